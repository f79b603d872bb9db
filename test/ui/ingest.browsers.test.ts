import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumPath, launchChromium } from '../helpers/browser.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * Browsers sending to sluice from another origin, in Debian's Chromium: Segment's own browser
 * library (`@segment/analytics-next`, bundled with esbuild) and sluice's SDK (`src/client/`).
 * The page is served from one local origin, sluice from another; every request the page makes
 * elsewhere is aborted (no CDN, no internet). A missing Chromium fails the test: `.ci/run`
 * installs it.
 */

const CHROMIUM = chromiumPath();
const suite = CHROMIUM ? describe : describe.skip;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let p: Pipeline;
let sluiceUrl: string;
let pageServer: Server;
let pageUrl: string;
let browser: Browser;

beforeAll(async () => {
  if (!CHROMIUM) return;
  const bundle = await build({
    stdin: {
      contents: `
        import { AnalyticsBrowser } from '@segment/analytics-next';
        import { SluiceClient } from './src/client/index.ts';
        window.AnalyticsBrowser = AnalyticsBrowser;
        window.SluiceClient = SluiceClient;`,
      resolveDir: ROOT,
      loader: 'ts',
    },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'chrome110',
    write: false,
    logLevel: 'silent',
  });
  const js = bundle.outputFiles[0]!.text;
  pageServer = createServer((req, res) => {
    if (req.url === '/bundle.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
    else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>shop</title><script src="/bundle.js"></script>');
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => pageServer.listen(0, '127.0.0.1', r));
  pageUrl = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}/`;

  p = await startPipeline();
  sluiceUrl = await p.app.listen({ port: 0, host: '127.0.0.1' });
  browser = await launchChromium(CHROMIUM);
});
afterAll(async () => {
  await browser?.close();
  await p?.close();
  await new Promise((r) => pageServer?.close(r));
});

async function openPage(): Promise<{ page: Page; offsite: string[]; errors: string[] }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const offsite: string[] = [];
  const errors: string[] = [];
  // Only the two local origins: anything else (a CDN, the internet) is aborted and recorded.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(pageUrl) || url.startsWith(sluiceUrl)) return route.continue();
    offsite.push(url);
    return route.abort();
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(pageUrl);
  return { page, offsite, errors };
}

async function stored(key: string) {
  const r = await p.app.inject({ method: 'GET', url: `/v1/events/${encodeURIComponent(key)}`, headers: { authorization: `Bearer ${p.tenant.readKey}` } });
  return r.json() as { status: string; stored: { type: string; key: string; properties: Record<string, unknown>; context: Record<string, unknown> } | null };
}

suite('browsers', () => {
  it('browser.segment-analytics-next-delivers-track-page-and-identify-from-another-origin', async () => {
    const { page, offsite, errors } = await openPage();
    const host = sluiceUrl.replace(/^http:\/\//, '');
    const sent = await page.evaluate(
      async ({ writeKey, apiHost }) => {
        type Ctx = { event: { messageId: string }; failedDelivery(): unknown };
        type Analytics = {
          track(e: string, p: object): Promise<Ctx>;
          page(c: string, n: string, p: object): Promise<Ctx>;
          identify(id: string, t: object): Promise<Ctx>;
        };
        const AB = (window as unknown as { AnalyticsBrowser: { load(s: object, o: object): Promise<[Analytics]> } }).AnalyticsBrowser;
        const [analytics] = await AB.load(
          { writeKey, cdnSettings: { integrations: { 'Segment.io': { apiKey: writeKey, apiHost, protocol: 'http' } } } },
          { disableClientPersistence: true },
        );
        const ctxs = [await analytics.track('Browser Clicked', { button: 'buy', price: 12.5 }), await analytics.page('Docs', 'Pricing', { path: '/pricing' }), await analytics.identify('user-browser', { plan: 'pro' })];
        return ctxs.map((c) => ({ messageId: c.event.messageId, failed: c.failedDelivery() ?? null }));
      },
      { writeKey: p.tenant.writeKey, apiHost: `${host}/v1` },
    );
    expect(sent.map((s) => s.failed)).toEqual([null, null, null]);
    for (const s of sent) await until(async () => (await stored(s.messageId)).status === 'stored');
    const [track, pg, identify] = await Promise.all(sent.map(async (s) => (await stored(s.messageId)).stored!));
    expect(track).toMatchObject({ type: 'Browser Clicked', properties: { button: 'buy', price: 12.5 } });
    expect(track!.context).toMatchObject({ library: { name: 'analytics.js' } });
    expect(typeof track!.context.anonymousId).toBe('string');
    expect(track!.key).toBe(track!.context.anonymousId);
    expect(pg).toMatchObject({ type: 'page', properties: { name: 'Pricing', category: 'Docs', path: '/pricing' } });
    expect(identify).toMatchObject({ type: 'identify', key: 'user-browser', properties: { plan: 'pro' } });
    // Segment's camelCase userAgent, as the browser sent it, is parsed.
    await until(async () => (await stored(sent[0]!.messageId)).stored!.context.ua !== undefined);
    expect((await stored(sent[0]!.messageId)).stored!.context.ua).toMatchObject({ browser: { name: expect.stringMatching(/Chrom/) } });
    expect(offsite).toEqual([]);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('browser.sluice-sdk-sends-gzip-batches-with-a-bearer-key-through-a-cors-preflight', async () => {
    const { page, offsite, errors } = await openPage();
    const before = (await p.store.rawStats('acme')).events;
    const result = await page.evaluate(
      async ({ url, writeKey }) => {
        type Client = { track(t: string, p: object, o: object): Promise<{ idempotency_key: string }>; close(): Promise<void> };
        const C = (window as unknown as { SluiceClient: new (o: object) => Client }).SluiceClient;
        const failures: string[] = [];
        const client = new C({ url, writeKey, flushIntervalMs: 50, maxAttempts: 2, onError: (e: Error) => failures.push(e.message), onDrop: (_e: unknown, r: string) => failures.push(`dropped: ${r}`) });
        const keys: string[] = [];
        for (let i = 0; i < 3; i++) keys.push((await client.track('sdk.clicked', { n: i }, { key: 'user-sdk' })).idempotency_key);
        await client.close();
        return { keys, failures };
      },
      { url: sluiceUrl.replace(/\/$/, ''), writeKey: p.tenant.writeKey },
    );
    expect(result.failures).toEqual([]);
    for (const k of result.keys) await until(async () => (await stored(k)).status === 'stored');
    expect((await Promise.all(result.keys.map(async (k) => (await stored(k)).stored!.properties)))).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
    expect((await p.store.rawStats('acme')).events).toBe(before + 3);
    expect(offsite).toEqual([]);
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
