import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumPath, launchChromium } from '../helpers/browser.js';
import { freePort, keysFrom, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { apiOk } from '../helpers/api.js';

/**
 * The dead-letter workbench in a real browser against a real `sluice up`: a group of
 * amounts sent as strings is acknowledged, a cast patch is tested on its samples, the dry
 * run predicts exactly how many would pass, the replay stores them, and the group shrinks
 * to the entries no cast can fix.
 */
const exe = chromiumPath();
const suite = exe ? describe : describe.skip;
if (!exe) console.warn('test/ui: no Chromium (install Debian\'s chromium or set SLUICE_TEST_CHROMIUM): the workbench test is skipped');

const FIXABLE = 12;
const UNFIXABLE = 3;
const CAST = '{"steps": [{"cast": {"field": "properties.amount", "to": "number"}}]}';

suite('console dead-letter workbench', () => {
  let dir: string;
  let server: ServerProcess;
  let keys: ReturnType<typeof keysFrom>;
  let browser: Browser;

  const call = <T>(key: string, method: string, url: string, body?: unknown): Promise<T> => apiOk<T>(server.url, key, method, url, body);
  const stored = async () => (await call<{ rows: number[][] }>(keys.readKey, 'POST', '/v1/query', { event: 'order', from: '-1h', measures: ['count'] })).rows.reduce((s, r) => s + Number(r.at(-1) ?? 0), 0);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ui-wb-'));
    server = await startServer(dir, await freePort());
    keys = keysFrom(server.stdout);
    await call(keys.adminKey, 'PUT', '/v1/schemas/order', { owner: 'payments', schema: { type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } } });
    const ts = new Date().toISOString();
    await call(keys.writeKey, 'POST', '/v1/events', [
      ...Array.from({ length: FIXABLE }, (_, i) => ({ type: 'order', key: `u${i}`, idempotency_key: `s-${i}`, ts, properties: { amount: `${i}.5` } })),
      ...Array.from({ length: UNFIXABLE }, (_, i) => ({ type: 'order', key: `x${i}`, idempotency_key: `x-${i}`, ts, properties: { amount: 'lots' } })),
      { type: 'order', key: 'g', idempotency_key: 'g-0', ts, properties: { amount: 1 } },
    ]);
    browser = await launchChromium(exe!);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (server) await stop(server);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('console.workbench-acknowledge-test-a-patch-predict-replay-and-watch-the-group-shrink', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/`);
    await page.getByTestId('signin-key').fill(keys.adminKey);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('who').waitFor();

    await page.goto(`${server.url}/ui/dlq`);
    await expect.poll(() => page.getByTestId('dlq-group-count').allTextContents(), { timeout: 30_000 }).toEqual([String(FIXABLE + UNFIXABLE)]);
    await page.getByTestId('dlq-group').first().click();

    // The lifecycle: acknowledged with an owner and a note, kept in the group's history.
    await expect.poll(() => page.getByTestId('dlq-group-status').textContent()).toBe('open');
    await page.getByTestId('dlq-owner').fill('payments-oncall');
    await page.getByLabel('note').fill('amounts sent as strings by app 4.2');
    await page.getByTestId('dlq-move-acknowledged').click();
    await expect.poll(() => page.getByTestId('dlq-group-status').textContent()).toBe('acknowledged');
    expect(await page.getByTestId('dlq-history').textContent()).toContain('amounts sent as strings by app 4.2');

    // The patch tested on the samples: the fixable ones become numbers, the others fail the cast.
    await page.getByTestId('dlq-patch').fill(CAST);
    await page.getByTestId('dlq-patch-test').click();
    await page.getByTestId('dlq-patch-sample').first().waitFor();
    const samples = await page.getByTestId('dlq-patch-sample').allTextContents();
    expect(samples).toHaveLength(FIXABLE + UNFIXABLE);
    expect(samples.filter((s) => s.startsWith('stored') && s.includes('properties.amount'))).toHaveLength(FIXABLE);
    expect(samples.filter((s) => s.includes('transform_failed'))).toHaveLength(UNFIXABLE);
    // The patch is in the URL: the view can be shared.
    expect(new URL(page.url()).searchParams.get('patch')).toBe(CAST);

    // The dry run predicts the whole group; nothing is written.
    await page.getByTestId('dlq-patch-dry-run').click();
    await expect.poll(() => page.getByTestId('dlq-would-pass').textContent()).toBe(String(FIXABLE));
    expect(await page.getByTestId('dlq-would-fail').allTextContents()).toEqual([expect.stringContaining(`transform_failed${UNFIXABLE}`)]);
    expect(await stored()).toBe(1);

    // The replay stores exactly the predicted entries, and the group shrinks to the rest.
    await page.getByTestId('dlq-patch-replay').click();
    await expect.poll(() => page.getByTestId('dlq-result').textContent()).toContain(`Replayed ${FIXABLE} with the patch`);
    await expect.poll(stored, { timeout: 30_000 }).toBe(1 + FIXABLE);
    await expect.poll(() => page.getByTestId('dlq-group-count').allTextContents(), { timeout: 30_000 }).toEqual([String(UNFIXABLE)]);
  });
});
