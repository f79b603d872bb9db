import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import { chromiumPath, launchChromium } from './browser.js';
import { batchBodies, percentile, post, queriedTotal } from './load.js';
import { freePort, keysFrom, ROOT, startSluice } from './proc.js';

/**
 * `npm run bench:ui`: the console's budgets (issue "The console"), each beside a baseline
 * measured in the same run.
 *
 *   bundle    JavaScript and CSS the first page loads, gzipped (level 6, what servers and
 *             CDNs use), against the budget of 250 KB
 *   chart     Explore drawing an answer of 1,440 buckets × 10 groups (a day per minute),
 *             from the answer's arrival to the chart drawn (User Timing marks in the
 *             console), against the same answer with 1 group; budget 200 ms
 *   overview  navigation to the Overview showing the totals of N stored events, against
 *             GET /v1/signals alone from Node (the API's share); budget 1.5 s at 10M events
 *
 * Flags: --overview-events N (default 1,000,000; the issue's budget is stated at 10,000,000),
 * --runs N (default 5), --skip-overview.
 */
const { values } = parseArgs({ options: { 'overview-events': { type: 'string' }, runs: { type: 'string' }, 'skip-overview': { type: 'boolean' } } });
const OVERVIEW_EVENTS = Number(values['overview-events'] ?? 1_000_000);
const RUNS = Number(values.runs ?? 5);
const UI_DIR = path.join(ROOT, 'dist/ui');

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const say = (s: string): void => void process.stderr.write(s + '\n');
const median = (xs: number[]): number => percentile(xs, 0.5);

function bundle(): { files: { file: string; raw: number; gzip: number }[]; gzip: number } {
  const html = fs.readFileSync(path.join(UI_DIR, 'index.html'), 'utf8');
  const refs = [...html.matchAll(/(?:src|href)="\/ui\/(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
  const files = refs.map((file) => {
    const bytes = fs.readFileSync(path.join(UI_DIR, file));
    return { file, raw: bytes.length, gzip: gzipSync(bytes, { level: 6 }).length };
  });
  return { files, gzip: files.reduce((s, f) => s + f.gzip, 0) };
}

/** An answer of POST /v1/query: `buckets` per-minute buckets × `groups` groups, ending now. */
function answer(buckets: number, groups: number) {
  const end = Math.floor(Date.now() / 60_000) * 60_000;
  const rows: (string | number)[][] = [];
  for (let b = 0; b < buckets; b++) {
    const bucket = new Date(end - (buckets - b) * 60_000).toISOString();
    for (let g = 0; g < groups; g++) rows.push([bucket, `group-${g}`, Math.round(1000 + 500 * Math.sin(b / 60 + g))]);
  }
  return { columns: ['bucket', 'properties.g', 'count'], rows, watermark: new Date(end - 60_000).toISOString(), source: 'raw', elapsed_ms: 1 };
}

async function chartMs(page: Page, url: string, buckets: number, groups: number): Promise<number[]> {
  const body = JSON.stringify(answer(buckets, groups));
  await page.route('**/v1/query', (route) => route.fulfill({ status: 200, contentType: 'application/json', body }));
  const q = { from: '-24h', interval: '1m', group_by: ['properties.g'], measures: ['count'] };
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    await page.goto(`${url}/ui/explore?q=${encodeURIComponent(JSON.stringify(q))}&run=${i}`);
    await page.waitForFunction(() => performance.getEntriesByName('sluice:chart-drawn').length > 0 && performance.getEntriesByName('sluice:answer').length > 0);
    out.push(
      await page.evaluate(() => {
        const answered = performance.getEntriesByName('sluice:answer')[0]!.startTime;
        return performance.getEntriesByName('sluice:chart-drawn').find((m) => m.startTime >= answered)!.startTime - answered;
      }),
    );
  }
  await page.unroute('**/v1/query');
  return out;
}

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(UI_DIR, 'index.html'))) throw new Error(`${UI_DIR} is missing: run "npm run build"`);
  const exe = chromiumPath();
  if (!exe) throw new Error('no Chromium: install it (apt-get install chromium) or set SLUICE_TEST_CHROMIUM');

  const b = bundle();
  const lines: string[] = [];
  lines.push(`bundle    first page JS+CSS gzipped ${fmt(b.gzip / 1024, 1)} KB (${b.files.map((f) => `${f.file} ${fmt(f.raw / 1024, 1)} KB raw`).join(', ')}); budget 250 KB: ${fmt(b.gzip / (250 * 1024), 2)}× of it`);
  say(lines.at(-1)!);

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-ui-'));
  // No backlog cap: the bench sends faster than the store drains, and the backlog is what it measures past.
  const server = await startSluice(path.join(work, 'data'), await freePort(), { SLUICE_QUOTAS_BACKLOG: '0' });
  const browser = await launchChromium(exe);
  try {
    // The banner with the new tenant's keys follows the first /healthz answer closely.
    for (let i = 0; i < 100 && !server.stdout.includes('admin key'); i++) await new Promise((r) => setTimeout(r, 50));
    const { writeKey, readKey } = keysFrom(server.stdout);
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${server.url}/ui/`);
    await page.getByTestId('signin-key').fill(readKey);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('who').waitFor();

    const one = await chartMs(page, server.url, 1440, 1);
    const ten = await chartMs(page, server.url, 1440, 10);
    lines.push(
      `chart     1,440 buckets × 10 groups drawn in ${fmt(median(ten), 1)} ms (median of ${RUNS}; max ${fmt(Math.max(...ten), 1)}) vs × 1 group ${fmt(median(one), 1)} ms: ${fmt(median(ten) / median(one), 2)}×; budget 200 ms: ${fmt(median(ten) / 200, 2)}× of it`,
    );
    say(lines.at(-1)!);

    if (!values['skip-overview']) {
      say(`overview: sending ${fmt(OVERVIEW_EVENTS)} events`);
      const batch = 1000;
      const bodies = batchBodies(`ui-${Date.now()}`, OVERVIEW_EVENTS, batch);
      await post(server.url, writeKey, bodies, (i) => Math.min(batch, OVERVIEW_EVENTS - i * batch), 8);
      while ((await queriedTotal(server.url, readKey)) < OVERVIEW_EVENTS) await new Promise((r) => setTimeout(r, 500));
      const shown = OVERVIEW_EVENTS.toLocaleString('en-US');
      const ui: number[] = [];
      const apiOnly: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const t0 = performance.now();
        const r = await fetch(`${server.url}/v1/signals?from=-1h&interval=1m`, { headers: { authorization: `Bearer ${readKey}` } });
        await r.json();
        apiOnly.push(performance.now() - t0);
        await page.goto(`${server.url}/ui/?run=${i}`);
        await page.waitForFunction((n) => document.querySelector('[data-testid="overview-stored"]')?.textContent === n, shown, { timeout: 60_000 });
        // performance.now() in the page counts from the navigation's start.
        ui.push(await page.evaluate(() => performance.now()));
      }
      lines.push(
        `overview  ${fmt(OVERVIEW_EVENTS)} events shown ${fmt(median(ui))} ms after navigation (median of ${RUNS}) vs GET /v1/signals alone ${fmt(median(apiOnly))} ms: ${fmt(median(ui) / median(apiOnly), 2)}×; budget 1,500 ms: ${fmt(median(ui) / 1500, 2)}× of it`,
      );
      say(lines.at(-1)!);
    }
  } finally {
    await browser.close();
    await server.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
  process.stdout.write(lines.join('\n') + '\n');
}

await main();
