import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumPath, launchChromium } from '../helpers/browser.js';
import { freePort, keysFrom, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { apiOk } from '../helpers/api.js';

/**
 * The console's Rollouts page in a real browser against a real `sluice up`: the list with
 * each rollout's state and share, one rollout's decisions with the numbers the API recorded
 * (guardrail values for cohort and baseline, tolerance, sample sizes, verdict), the diff and
 * its samples, and the operator's buttons; hidden from keys that may not use it.
 */

const exe = chromiumPath();
const suite = exe ? describe : describe.skip;
if (!exe) console.warn("test/ui: no Chromium (install Debian's chromium or set SLUICE_TEST_CHROMIUM): the console tests are skipped");

/** A hostile key: it would set window.__xss if a diff sample were ever treated as markup. */
const XSS_KEY = `<img src=x onerror="window.__xss='rollout'">`;
const EVENTS = 200;

interface Decision {
  verdict: string;
  reason: string;
  checks?: { guardrail: string; cohort: number; baseline: number; tolerance: number; cohort_events: number; baseline_events: number; over_tolerance: boolean; breached: boolean }[];
}

suite('console rollouts', () => {
  let dir: string;
  let server: ServerProcess;
  let keys: { writeKey: string; readKey: string; adminKey: string };
  let browser: Browser;
  let id: string;

  const call = <T>(key: string, method: string, url: string, body?: unknown): Promise<T> => apiOk<T>(server.url, key, method, url, body);

  async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
    let last: T | undefined;
    for (const end = Date.now() + 30_000; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
      last = await read();
      if (ok(last)) return last;
    }
    throw new Error(`${what}: still ${JSON.stringify(last)}`);
  }

  async function signedIn(key: string): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/`);
    await page.getByTestId('signin-key').fill(key);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('who').waitFor();
    return page;
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ui-rollouts-'));
    server = await startServer(dir, await freePort());
    keys = keysFrom(server.stdout);
    // A candidate pipeline version that removes the email: every compared event differs in that field.
    await call(keys.adminKey, 'PUT', '/v1/pipeline', { steps: [{ set: { field: 'properties.seen', value: 'true' } }] });
    await call(keys.adminKey, 'POST', '/v1/pipeline/versions', { steps: [{ set: { field: 'properties.seen', value: 'true' } }, { remove: { fields: ['properties.email'] } }] });
    // A view of the emails: compared per bucket, its distinct emails differ.
    await call(keys.adminKey, 'PUT', '/v1/views/emails', { event: 'checkout', measures: ['count', 'uniq:email'], grain: '1d' });
    const created = await call<{ id: string }>(keys.adminKey, 'POST', '/v1/rollouts', {
      change: { pipeline_version: 2 },
      steps: [{ shadow: { sample: 1, duration: '1s' } }, { ramp: { percents: [50], step_duration: '1h' } }],
      guardrails: { dead_letter_rate: 0.01, drop_rate: 0.01, min_events: 50 },
      auto: false,
    });
    id = created.id;
    await call(keys.writeKey, 'POST', '/v1/events', Array.from({ length: EVENTS }, (_, i) => ({ type: 'checkout', key: i === 0 ? XSS_KEY : `user-${i}`, idempotency_key: `co-${i}`, properties: { amount: i, email: `u${i}@example.com` } })));
    // The shadow step is done and judged on every event: it waits for the operator (auto is false), with its numbers.
    await until(
      'holding',
      () => call<{ state: string; decisions: Decision[] }>(keys.adminKey, 'GET', `/v1/rollouts/${id}`),
      (r) => r.state === 'holding' && (r.decisions.at(-1)?.checks?.[0]?.cohort_events ?? 0) === EVENTS,
    );
    browser = await launchChromium(exe!);
  });

  afterAll(async () => {
    await browser?.close();
    if (server) await stop(server);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('console.rollouts-page-shows-each-decision-with-the-numbers-the-api-recorded-and-the-diff-samples', async () => {
    const page = await signedIn(keys.adminKey);
    await page.getByRole('link', { name: 'Rollouts' }).click();
    const row = page.getByTestId('rollout-row');
    await row.first().waitFor();
    expect(await row.count()).toBe(1);
    expect(await page.getByTestId('rollout-row-state').textContent()).toBe('holding');
    expect(await page.getByTestId('rollout-row-share').textContent()).toBe('0 %');
    await row.click();
    // The chosen rollout is in the URL.
    await expect.poll(() => new URL(page.url()).searchParams.get('id')).toBe(id);
    await page.getByTestId('rollout-detail').getByTestId('decision-check').first().waitFor();

    const api = await call<{ decisions: Decision[]; hold_reason: string }>(keys.adminKey, 'GET', `/v1/rollouts/${id}`);
    expect(await page.getByTestId('rollout-hold-reason').textContent()).toBe(`Holding: ${api.hold_reason}`);
    // Its candidate is stored: nothing is missing.
    expect(await page.getByTestId('rollout-candidate-missing').count()).toBe(0);
    // The steps and guardrails in words, the step it is in marked.
    expect(await page.getByTestId('rollout-step').allTextContents()).toEqual([
      'shadow: the candidate runs beside the live version on 100% of events, its output kept apart, for 1s (now)',
      'ramp: live for 50% of keys, 1h each',
    ]);
    expect(await page.getByTestId('rollout-guardrail').allTextContents()).toEqual([
      "dead-letter rate at most 0.01 above the baseline's (1.0 percentage points)",
      "drop rate at most 0.01 above the baseline's (1.0 percentage points)",
      'judged on at least 50 events on each side; fewer holds the step',
    ]);
    expect(await page.getByTestId('rollout-hold-next').textContent()).toMatch(/^Judged again at every evaluation( \(last [0-9T:.Z-]+\))?; it goes on by itself once it passes\. Meanwhile, advance goes on without the guardrails' verdict; abort stops it and repairs what it did\.$/);
    const verdicts = await page.getByTestId('decision-verdict').allTextContents();
    expect(verdicts).toEqual(api.decisions.map((d) => d.verdict));
    expect(await page.getByTestId('decision-reason').allTextContents()).toEqual(api.decisions.map((d) => d.reason));
    const hold = api.decisions.at(-1)!;
    expect(hold.verdict).toBe('hold');
    const shown = await page
      .locator('[data-testid="rollout-decision"][data-verdict="hold"] [data-testid="decision-check"]')
      .evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    const fmt = (v: number) => Number(v.toPrecision(4)).toString();
    expect(shown).toEqual(
      hold.checks!.map((c) => [c.guardrail, fmt(c.cohort), fmt(c.baseline), fmt(c.cohort - c.baseline), fmt(c.tolerance), c.cohort_events.toLocaleString('en-US'), c.baseline_events.toLocaleString('en-US'), c.breached ? 'breached' : c.over_tolerance ? 'over, too few events to judge' : 'within']),
    );
    expect(shown.map((c) => c[0])).toEqual(['dead_letter_rate', 'drop_rate']);

    // The diff: every event changed in one field, with samples showing both outputs.
    const diff = await call<{ compared: number; changed: number; samples: { key: string; fields: string[] }[] }>(keys.adminKey, 'GET', `/v1/rollouts/${id}/diff?limit=10`);
    expect(diff).toMatchObject({ compared: EVENTS, changed: EVENTS });
    expect(await page.getByTestId('rollout-diff').textContent()).toBe(`compared ${EVENTS}: identical 0, changed ${EVENTS}, dropped 0, dead-lettered 0 (diff rate 1)`);
    expect(await page.getByTestId('diff-sample').count()).toBe(diff.samples.length);
    expect(await page.getByTestId('diff-sample-fields').allTextContents()).toEqual(diff.samples.map(() => 'properties.email'));
    expect(await page.evaluate(() => (window as { __xss?: unknown }).__xss)).toBeUndefined();
    // Per view: the buckets compared and differing, as the API answers them.
    const views = (await call<{ views: { view: string; buckets_differing: number }[] }>(keys.adminKey, 'GET', `/v1/rollouts/${id}/diff?limit=10`)).views;
    expect(views.map((v) => v.view)).toEqual(['emails']);
    expect(views[0]!.buckets_differing).toBeGreaterThan(0);
    expect(await page.locator('[data-testid="diff-view"][data-view="emails"] [data-testid="diff-view-differing"]').textContent()).toBe(views[0]!.buckets_differing.toLocaleString('en-US'));
  });

  it('console.rollouts-buttons-advance-pause-resume-and-abort-as-the-state-allows', async () => {
    const page = await signedIn(keys.adminKey);
    await page.goto(`${server.url}/ui/rollouts?id=${id}`);
    await page.getByTestId('rollout-state').waitFor();
    expect(await page.getByTestId('rollout-resume').isDisabled()).toBe(true);
    await page.getByTestId('rollout-advance').click();
    await expect.poll(() => page.getByTestId('rollout-state').textContent()).toBe('ramp');
    expect(await page.getByTestId('rollout-share').textContent()).toBe('50 %');
    await page.getByTestId('rollout-pause').click();
    await expect.poll(() => page.getByTestId('rollout-state').textContent()).toBe('paused');
    expect(await page.getByTestId('rollout-advance').isDisabled()).toBe(true);
    await page.getByTestId('rollout-resume').click();
    await expect.poll(() => page.getByTestId('rollout-state').textContent()).toBe('ramp');
    await page.getByTestId('rollout-abort').click();
    await expect.poll(() => page.getByTestId('rollout-state').textContent()).toBe('aborted');
    expect(await page.getByTestId('rollout-share').textContent()).toBe('0 %');
    for (const a of ['advance', 'pause', 'resume', 'abort', 'promote']) expect(await page.getByTestId(`rollout-${a}`).isDisabled()).toBe(true);
    // The list follows, and every action is in the API's record with the admin key's id as actor.
    await expect.poll(() => page.getByTestId('rollout-row-state').textContent()).toBe('aborted');
    const r = await call<{ decisions: { verdict: string; actor: string }[]; repair: { status: string } }>(keys.adminKey, 'GET', `/v1/rollouts/${id}`);
    expect(r.decisions.slice(-4).map((d) => d.verdict)).toEqual(['advance', 'pause', 'resume', 'abort']);
    expect(new Set(r.decisions.slice(-4).map((d) => d.actor)).size).toBe(1);
    await page.getByTestId('rollout-repair').waitFor();
    expect(await page.getByTestId('rollout-repair').textContent()).toMatch(/^(pending|done): \d+ repaired, \d+ past retention$/);
    expect(r.repair.status).toMatch(/^(pending|done)$/);
  });

  it('console.rollouts-a-schema-rollout-created-before-its-version-is-published-says-what-it-waits-for', async () => {
    const r = await call<{ id: string; candidate_missing: string | null }>(keys.adminKey, 'POST', '/v1/rollouts', {
      change: { schema: { type: 'signup', version: 1 } },
      steps: [{ shadow: { sample: 1, duration: '1h' } }],
      guardrails: { dead_letter_rate: 0.01 },
      auto: false,
    });
    expect(r.candidate_missing).toBe('schema signup version 1');
    const page = await signedIn(keys.adminKey);
    await page.goto(`${server.url}/ui/rollouts?id=${r.id}`);
    await page.getByTestId('rollout-candidate-missing').waitFor();
    expect(await page.getByTestId('rollout-candidate-missing').textContent()).toBe('Waiting for schema signup version 1: nothing is compared, counted or routed until it is published.');
    await call(keys.adminKey, 'PUT', '/v1/schemas/signup', { owner: 'growth', schema: { type: 'object' } });
    await page.reload();
    await page.getByTestId('rollout-state').waitFor();
    expect(await page.getByTestId('rollout-candidate-missing').count()).toBe(0);
  });

  it('console.rollouts-page-is-hidden-from-a-read-key', async () => {
    const page = await signedIn(keys.readKey);
    expect(await page.getByRole('link', { name: 'Rollouts' }).count()).toBe(0);
    await page.goto(`${server.url}/ui/rollouts?id=${id}`);
    await page.getByTestId('forbidden').waitFor();
    expect(await page.getByTestId('rollout-detail').count()).toBe(0);
  });
});
