import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumPath, launchChromium } from '../helpers/browser.js';
import { CLI, freePort, keysFrom, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { apiOk } from '../helpers/api.js';

/**
 * The console in a real browser (the system's Chromium through playwright-core) against a
 * real `sluice up`: its numbers are the API's, hostile event data is shown as text and never
 * runs, a key sees only its tenant, and the key lives in sessionStorage only.
 */

const exe = chromiumPath();
const suite = exe ? describe : describe.skip;
if (!exe) console.warn('test/ui: no Chromium (install Debian\'s chromium or set SLUICE_TEST_CHROMIUM): the console tests are skipped');

/** Hostile strings: each would set window.__xss if the console ever treated data as markup or a URL. */
const XSS_TYPE = '<script>window.__xss="type"</script>';
const XSS_KEY = `<img src=x onerror="window.__xss='key'">`;
const XSS_IDEM = '<svg onload=window.__xss=7>';
const XSS_PROPS = {
  '<img src=x onerror=window.__xss=3>': 'javascript:window.__xss=4',
  html: '<script>window.__xss=5</script><img src=x onerror=window.__xss=5>',
  link: 'javascript:window.__xss=6',
};
/** An unknown type while the tenant dead-letters unknown types: its dead letter's message quotes it. */
const XSS_DEAD_TYPE = '<img src=x onerror=window.__xss=8>';

const CHECKOUT_EU = 12;
const CHECKOUT_US = 8;
const SIGNUPS = 5;
const XSS_EVENTS = 3;
const DEAD = 6;
const BETA_EVENTS = 7;

interface Keys {
  writeKey: string;
  readKey: string;
  adminKey: string;
}

suite('console', () => {
  let dir: string;
  let server: ServerProcess;
  let a: Keys;
  let b: Keys;
  let browser: Browser;

  const call = <T>(key: string, method: string, url: string, body?: unknown): Promise<T> => apiOk<T>(server.url, key, method, url, body);
  const send = (key: string, events: unknown[]) => call<{ accepted: number }>(key, 'POST', '/v1/events', events);

  async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
    let last: T | undefined;
    for (const end = Date.now() + 30_000; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
      last = await read();
      if (ok(last)) return last;
    }
    throw new Error(`${what}: still ${JSON.stringify(last)}`);
  }

  async function signedIn(key: string, context?: BrowserContext): Promise<{ page: Page; dialogs: string[] }> {
    const page = await (context ?? (await browser.newContext())).newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(`${server.url}/`);
    await page.getByTestId('signin-key').fill(key);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('who').waitFor();
    return { page, dialogs };
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ui-'));
    server = await startServer(dir, await freePort());
    a = keysFrom(server.stdout);
    const beta = JSON.parse(execFileSync(process.execPath, [CLI, 'tenant', 'create', 'beta', '--data-dir', dir, '--json'], { encoding: 'utf8' })) as Record<string, string>;
    b = { writeKey: beta.write_key!, readKey: beta.read_key!, adminKey: beta.admin_key! };

    const checkout = (region: string, i: number) => ({ type: 'checkout', key: `user-${i % 4}`, idempotency_key: `co-${region}-${i}`, properties: { region, amount: i } });
    await send(a.writeKey, [
      ...Array.from({ length: CHECKOUT_EU }, (_, i) => checkout('eu', i)),
      ...Array.from({ length: CHECKOUT_US }, (_, i) => checkout('us', i)),
      ...Array.from({ length: SIGNUPS }, (_, i) => ({ type: 'signup', key: `user-${i}`, idempotency_key: `su-${i}`, properties: { plan: 'free' } })),
      ...Array.from({ length: XSS_EVENTS }, (_, i) => ({ type: XSS_TYPE, key: XSS_KEY, idempotency_key: i === 0 ? XSS_IDEM : `xss-${i}`, properties: XSS_PROPS })),
    ]);
    await send(b.writeKey, Array.from({ length: BETA_EVENTS }, (_, i) => ({ type: 'beta-secret', key: 'beta-key', idempotency_key: `beta-idem-${i}`, properties: { beta: true } })));
    // Dead letters: unknown types are dead-lettered from now on, with a message that quotes the type.
    await call(a.adminKey, 'PATCH', '/v1/tenant', { unknown_types: 'dead-letter' });
    await send(a.writeKey, [
      ...Array.from({ length: 4 }, (_, i) => ({ type: XSS_DEAD_TYPE, key: XSS_KEY, idempotency_key: `dead-xss-${i}`, properties: XSS_PROPS })),
      ...Array.from({ length: DEAD - 4 }, (_, i) => ({ type: 'refund', key: `user-${i}`, idempotency_key: `dead-refund-${i}`, properties: { amount: -i } })),
    ]);
    await call(a.adminKey, 'PATCH', '/v1/tenant', { unknown_types: 'accept' });
    const stored = CHECKOUT_EU + CHECKOUT_US + SIGNUPS + XSS_EVENTS;
    await until('stored', () => call<{ rows: number[][] }>(a.readKey, 'POST', '/v1/query', { interval: null, measures: ['count'], from: '-1h', source: 'raw' }), (r) => r.rows[0]?.[0] === stored);
    await until('dead-lettered', () => call<{ groups: { count: number }[] }>(a.adminKey, 'GET', '/v1/dlq/groups'), (r) => r.groups.reduce((s, g) => s + g.count, 0) === DEAD);
    browser = await launchChromium(exe!);
  });

  afterAll(async () => {
    await browser?.close();
    if (server) await stop(server);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('console.is-served-at-ui-with-strict-security-headers', async () => {
    const root = await fetch(`${server.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/ui/');
    for (const url of ['/ui/', '/ui/explore?q=%7B%7D', '/ui/events/some-key']) {
      const r = await fetch(`${server.url}${url}`);
      expect(r.status).toBe(200);
      const csp = r.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).toContain("frame-ancestors 'none'");
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('referrer-policy')).toBe('no-referrer');
      const html = await r.text();
      // No inline script: every <script> has a src on this origin.
      expect(html.match(/<script\b[^>]*>/g)?.every((s) => /\ssrc="\/ui\/assets\//.test(s))).toBe(true);
      expect(html).not.toMatch(/<script\b[^>]*>[^<\s]/);
      expect(html).not.toMatch(/https?:\/\//);
    }
    const script = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(await (await fetch(`${server.url}/ui/`)).text())![1]!;
    const asset = await fetch(`${server.url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
    expect(asset.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect((await fetch(`${server.url}/ui/assets/missing.js`)).status).toBe(404);
  });

  it('console.numbers-equal-the-api-on-overview-explore-and-dead-letters', async () => {
    const { page } = await signedIn(a.adminKey);

    // Overview: the totals of the last hour are the sums of GET /v1/signals.
    const signals = await call<{ columns: string[]; rows: (number | null)[][] }>(a.readKey, 'GET', '/v1/signals?from=-1h&interval=1m');
    const sum = (c: string) => signals.rows.reduce((s, r) => s + Number(r[signals.columns.indexOf(c)] ?? 0), 0);
    expect(sum('received')).toBe(CHECKOUT_EU + CHECKOUT_US + SIGNUPS + XSS_EVENTS + DEAD);
    expect(sum('stored')).toBe(CHECKOUT_EU + CHECKOUT_US + SIGNUPS + XSS_EVENTS);
    expect(sum('dead_lettered')).toBe(DEAD);
    for (const c of ['received', 'accepted', 'stored', 'dead_lettered', 'rejected', 'duplicate']) {
      await expect.poll(() => page.getByTestId(`overview-${c}`).textContent()).toBe(sum(c).toLocaleString('en-US'));
    }
    await expect.poll(() => page.getByTestId('overview-gap').textContent()).toBe('0');

    // Explore: the same rows as POST /v1/query, with its source and a watermark.
    const q = { event: 'checkout', from: '-1h', interval: null, group_by: ['properties.region'], measures: ['count', 'sum:amount'], order_by: 'properties.region' };
    const api = await call<{ rows: (string | number)[][]; source: string }>(a.readKey, 'POST', '/v1/query', q);
    expect(api.rows).toEqual([
      ['eu', CHECKOUT_EU, (CHECKOUT_EU * (CHECKOUT_EU - 1)) / 2],
      ['us', CHECKOUT_US, (CHECKOUT_US * (CHECKOUT_US - 1)) / 2],
    ]);
    await page.goto(`${server.url}/ui/explore?q=${encodeURIComponent(JSON.stringify(q))}`);
    await page.getByTestId('result-row').first().waitFor();
    const cells = await page.getByTestId('result-row').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    expect(cells).toEqual(api.rows.map((r) => r.map(String)));
    expect(await page.getByTestId('source').textContent()).toBe(api.source);
    expect(await page.getByTestId('watermark').textContent()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
    await page.getByTestId('chart').waitFor();

    // A time series: one row per bucket, as the API answers.
    const series = { event: 'signup', from: '-1h', interval: '1m', measures: ['count'] };
    const apiSeries = await call<{ rows: (string | number)[][] }>(a.readKey, 'POST', '/v1/query', series);
    await page.goto(`${server.url}/ui/explore?q=${encodeURIComponent(JSON.stringify(series))}`);
    await page.getByTestId('result-row').first().waitFor();
    await expect.poll(() => page.getByTestId('result-row').count()).toBe(apiSeries.rows.length);
    const counts = await page.getByTestId('result-row').evaluateAll((rows) => rows.map((r) => Number(r.querySelectorAll('td')[1]!.textContent)));
    expect(counts.reduce((s, n) => s + n, 0)).toBe(SIGNUPS);
    expect(await page.locator('[data-testid="chart"] canvas').count()).toBe(1);

    // Dead letters: one group per signature, with the API's counts.
    const groups = await call<{ groups: { count: number }[] }>(a.adminKey, 'GET', '/v1/dlq/groups');
    await page.goto(`${server.url}/ui/dlq`);
    await page.getByTestId('dlq-group').first().waitFor();
    expect(await page.getByTestId('dlq-group').count()).toBe(groups.groups.length);
    const shown = await page.getByTestId('dlq-group-count').allTextContents();
    expect(shown.map(Number).sort()).toEqual(groups.groups.map((g) => g.count).sort());
    expect(shown.map(Number).reduce((s, n) => s + n, 0)).toBe(DEAD);

    // A group's replay is previewed (dry run) before anything is replayed.
    await page.getByTestId('dlq-group').first().click();
    await page.getByTestId('dlq-dry-run').click();
    await expect.poll(() => page.getByTestId('dlq-preview').textContent()).toBe(`${shown[0]} entries would be replayed.`);
    expect((await call<{ groups: { count: number }[] }>(a.adminKey, 'GET', '/v1/dlq/groups')).groups).toEqual(groups.groups);
    await page.context().close();
  });

  it('console.shows-hostile-event-data-as-text-on-every-page', async () => {
    const { page, dialogs } = await signedIn(a.adminKey);
    const noScript = async () => {
      expect(await page.evaluate(() => (window as unknown as { __xss?: unknown }).__xss)).toBeUndefined();
      expect(await page.evaluate(() => document.querySelectorAll('main script, main img, main svg, main iframe').length)).toBe(0);
      expect(dialogs).toEqual([]);
    };

    // Explore, grouped by type and key: the strings are cells' text.
    const byType = { from: '-1h', interval: null, group_by: ['type', 'key'], measures: ['count'] };
    await page.goto(`${server.url}/ui/explore?q=${encodeURIComponent(JSON.stringify(byType))}`);
    await page.getByTestId('result-row').first().waitFor();
    const texts = await page.getByTestId('result-row').allTextContents();
    expect(texts.some((t) => t.includes(XSS_TYPE) && t.includes(XSS_KEY))).toBe(true);
    // The catalog feeds the type picker: the hostile type is an option's text.
    await expect.poll(() => page.locator('[data-testid="q-event"] option').allTextContents()).toContain(XSS_TYPE);
    await noScript();

    // Explore of the hostile type, grouped by its hostile property values.
    const byProp = { event: XSS_TYPE, from: '-1h', interval: '1m', group_by: ['properties.html'], measures: ['count'] };
    await page.goto(`${server.url}/ui/explore?q=${encodeURIComponent(JSON.stringify(byProp))}`);
    await page.getByTestId('result-row').first().waitFor();
    expect((await page.getByTestId('result-table').textContent()) ?? '').toContain(XSS_PROPS.html);
    await noScript();

    // The event page: its key in the path, its payload as text.
    await page.goto(`${server.url}/ui/events/${encodeURIComponent(XSS_IDEM)}`);
    await expect.poll(() => page.getByTestId('event-status').textContent()).toContain('stored');
    const payload = (await page.getByTestId('event-payload').textContent()) ?? '';
    expect(payload).toContain(XSS_KEY.replace(/"/g, '\\"'));
    expect(payload).toContain('<img src=x onerror=window.__xss=3>');
    await noScript();

    // Dead letters: the message quotes the hostile type; the entries show the payload.
    await page.goto(`${server.url}/ui/dlq`);
    await page.getByTestId('dlq-group').first().waitFor();
    const groups = await page.getByTestId('dlq-group').allTextContents();
    const hostile = groups.findIndex((g) => g.includes(XSS_DEAD_TYPE));
    expect(hostile).toBeGreaterThanOrEqual(0);
    await page.getByTestId('dlq-group').nth(hostile).click();
    // The page may still show the group it opened with until the chosen group's entries arrive.
    await expect.poll(async () => (await page.getByTestId('dlq-entry').first().textContent()) ?? '').toContain(XSS_DEAD_TYPE);
    await noScript();

    // Live: a hostile event arriving while the page is open.
    await page.goto(`${server.url}/ui/live`);
    await expect.poll(() => page.getByTestId('live-state').textContent()).toBe('streaming');
    await send(a.writeKey, [{ type: XSS_TYPE, key: XSS_KEY, idempotency_key: 'xss-live', properties: XSS_PROPS }]);
    await page.getByTestId('tail-row').first().waitFor();
    expect((await page.getByTestId('tail-row').first().textContent()) ?? '').toContain(XSS_TYPE);

    // The Overview, Views, Schemas and Settings pages carry no event data that could run either.
    for (const p of ['/ui/', '/ui/views', '/ui/schemas', '/ui/settings']) {
      await page.goto(`${server.url}${p}`);
      await page.waitForLoadState('networkidle');
      await noScript();
    }
    // An error message quoting the hostile type (a saved query with a bad measure) is text too.
    await page.goto(`${server.url}/ui/explore?q=${encodeURIComponent(JSON.stringify({ event: XSS_TYPE, measures: [XSS_PROPS.html] }))}`);
    await expect.poll(() => page.getByTestId('error').first().textContent()).toContain(XSS_PROPS.html);
    await noScript();
    await page.context().close();
  });

  it('console.a-key-sees-only-its-tenant-even-by-editing-urls', async () => {
    const { page } = await signedIn(a.readKey);
    const betaSaved = await call<{ id: string }>(b.readKey, 'POST', '/v1/saved-queries', { name: 'beta-saved', query: { event: 'beta-secret' } });

    // A read key sees neither dead letters nor settings, and typing their URLs does not help.
    expect(await page.locator('header nav a').allTextContents()).toEqual(['Overview', 'Explore', 'Live', 'Views', 'Alerts']);
    for (const p of ['/ui/dlq', '/ui/settings', '/ui/schemas']) {
      await page.goto(`${server.url}${p}`);
      await page.getByTestId('forbidden').waitFor();
    }

    // The other tenant's type counts nothing here; its event is unknown; its saved query does not exist.
    const q = { event: 'beta-secret', from: '-1h', interval: null, measures: ['count'] };
    await page.goto(`${server.url}/ui/explore?q=${encodeURIComponent(JSON.stringify(q))}`);
    await page.getByTestId('result-table').waitFor();
    const rows = await page.getByTestId('result-row').allTextContents();
    expect(rows.every((r) => r.trim() === '0')).toBe(true);
    // The type picker (fed by GET /v1/catalog) and the saved queries know only this tenant's.
    await page.goto(`${server.url}/ui/explore`);
    await page.getByTestId('result-table').waitFor();
    await expect.poll(() => page.locator('[data-testid="q-event"] option').allTextContents()).toContain('checkout');
    expect(await page.locator('[data-testid="q-event"] option').allTextContents()).not.toContain('beta-secret');
    expect(await page.content()).not.toContain('beta-s');
    const status = await page.evaluate(
      async ([id]) => (await fetch(`/v1/saved-queries/${id}`, { headers: { authorization: `Bearer ${sessionStorage.getItem('sluice.key')}` } })).status,
      [betaSaved.id],
    );
    expect(status).toBe(404);

    await page.goto(`${server.url}/ui/events/beta-idem-0`);
    await expect.poll(() => page.getByTestId('event-status').textContent()).toBe('unknown');

    // Live: the other tenant's events never reach this tail.
    await page.goto(`${server.url}/ui/live`);
    await expect.poll(() => page.getByTestId('live-state').textContent()).toBe('streaming');
    await send(b.writeKey, [{ type: 'beta-secret', key: 'beta-key', idempotency_key: 'beta-live', properties: {} }]);
    await send(a.writeKey, [{ type: 'after-beta', key: 'alpha', idempotency_key: 'alpha-live', properties: {} }]);
    await page.getByTestId('tail-row').first().waitFor();
    const tail = await page.getByTestId('tail-row').allTextContents();
    expect(tail.some((t) => t.includes('after-beta'))).toBe(true);
    expect(tail.some((t) => t.includes('beta-secret'))).toBe(false);
    expect(await page.content()).not.toContain('beta-secret');
    await page.context().close();
  });

  it('console.keeps-the-key-in-session-storage-only-and-forgets-it-on-sign-out', async () => {
    const context = await browser.newContext();
    const { page } = await signedIn(a.readKey, context);
    expect(await page.evaluate(() => sessionStorage.getItem('sluice.key'))).toBe(a.readKey);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(await context.cookies()).toEqual([]);
    expect(page.url()).not.toContain(a.readKey);
    // A reload keeps the session; another tab does not have it.
    await page.reload();
    await page.getByTestId('who').waitFor();
    const other = await context.newPage();
    await other.goto(`${server.url}/ui/`);
    await other.getByTestId('signin-key').waitFor();
    // A write key is refused with a message, and nothing is kept.
    await other.getByTestId('signin-key').fill(a.writeKey);
    await other.getByTestId('signin-submit').click();
    await expect.poll(() => other.getByTestId('signin-error').textContent()).toContain('write key');
    expect(await other.evaluate(() => sessionStorage.length)).toBe(0);

    await page.getByTestId('signout').click();
    await page.getByTestId('signin-key').waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    await context.close();
  });

  it('console.live-tail-pauses-resumes-and-opens-an-event', async () => {
    const { page } = await signedIn(a.readKey);
    await page.goto(`${server.url}/ui/live?type=tail-test`);
    await expect.poll(() => page.getByTestId('live-state').textContent()).toBe('streaming');
    await send(a.writeKey, [{ type: 'tail-test', key: 'k', idempotency_key: 'tail-1', properties: { n: 1 } }, { type: 'other', key: 'k', idempotency_key: 'other-1', properties: {} }]);
    await expect.poll(() => page.getByTestId('tail-row').count()).toBe(1);
    await page.getByTestId('live-pause').click();
    await send(a.writeKey, [{ type: 'tail-test', key: 'k', idempotency_key: 'tail-2', properties: { n: 2 } }]);
    await expect.poll(() => page.getByTestId('live-state').textContent()).toBe('paused (1 held)');
    expect(await page.getByTestId('tail-row').count()).toBe(1);
    await page.getByTestId('live-pause').click();
    await expect.poll(() => page.getByTestId('tail-row').count()).toBe(2);
    expect(await page.getByTestId('tail-row').first().textContent()).toContain('tail-2');
    // The filter is in the URL; a row opens the event, which reaches the store.
    expect(new URL(page.url()).searchParams.get('type')).toBe('tail-test');
    await page.getByTestId('tail-row').first().click();
    await page.waitForURL(/\/ui\/events\/tail-2$/);
    await expect.poll(() => page.getByTestId('event-status').textContent(), { timeout: 20_000 }).toBe('stored');
    await page.context().close();
  });

  it('console.views-page-shows-each-views-status', async () => {
    await call(a.adminKey, 'PUT', '/v1/views/checkout_by_region', { event: 'checkout', dimensions: ['properties.region'], measures: ['count'], grain: '1h' });
    const { page } = await signedIn(a.readKey);
    await page.goto(`${server.url}/ui/views`);
    await page.getByTestId('view-status').first().waitFor();
    const api = await call<{ views: { name: string; status: string }[] }>(a.readKey, 'GET', '/v1/views');
    const status = await page.getByTestId('view-status').first().textContent();
    expect(['building', 'ready']).toContain(status);
    expect(api.views.map((v) => v.name)).toContain('checkout_by_region');
    // Its definition in one line (the JSON in its title).
    expect(await page.getByTestId('view-row').filter({ hasText: 'checkout_by_region' }).getByTestId('view-definition').textContent()).toBe('count of checkout by properties.region, per 1h');
    await page.context().close();
  });
  it('console.settings-show-a-new-key-once-and-revoke-it', async () => {
    const { page } = await signedIn(a.adminKey);
    await page.goto(`${server.url}/ui/settings`);
    await page.getByTestId('key-row').first().waitFor();
    const before = await page.getByTestId('key-row').count();
    expect((await call<{ keys: unknown[] }>(a.adminKey, 'GET', '/v1/keys')).keys).toHaveLength(before);
    await page.getByTestId('key-create').click();
    const secret = (await page.getByTestId('key-secret').textContent())!;
    expect(secret).toMatch(/^sluice_r_[0-9a-f]{16}_/);
    expect(await call(secret, 'GET', '/v1/whoami')).toMatchObject({ tenant: 'default', scope: 'read' });
    await expect.poll(() => page.getByTestId('key-row').count()).toBe(before + 1);
    // Shown once: after a reload the list has the key's id, never its secret.
    await page.reload();
    await expect.poll(() => page.getByTestId('key-row').count()).toBe(before + 1);
    const id = secret.split('_')[2]!;
    expect(await page.content()).toContain(id);
    expect(await page.content()).not.toContain(secret.split('_').slice(3).join('_'));
    await page.getByTestId('key-row').filter({ hasText: id }).getByRole('button', { name: 'Revoke' }).click();
    await expect.poll(() => page.getByTestId('key-row').filter({ hasText: id }).textContent()).toContain('revoked');
    expect((await fetch(`${server.url}/v1/whoami`, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(401);
    const audit = await call<{ entries: { action: string; subject: string }[] }>(a.adminKey, 'GET', '/v1/audit?limit=5');
    expect(audit.entries.slice(0, 2).map((e) => [e.action, e.subject])).toEqual([
      ['key.revoke', id],
      ['key.create', secret.slice(0, 26)],
    ]);
    // A quota set on the page is the tenant's setting.
    await page.getByLabel('Quota, events/s').fill('5000');
    await page.locator('.actions').filter({ has: page.getByLabel('Quota, events/s') }).getByRole('button', { name: 'Set' }).click();
    await expect.poll(async () => (await call<{ settings: { quota: { eventsPerSecond?: number } } }>(a.adminKey, 'GET', '/v1/tenant')).settings.quota.eventsPerSecond).toBe(5000);
    // 0 is unlimited, not the default (the page said "the default" for it).
    await call(a.adminKey, 'PATCH', '/v1/tenant', { events_per_second: 0 });
    await page.reload();
    await expect.poll(() => page.locator('.actions').filter({ has: page.getByLabel('Quota, events/s') }).locator('span').first().textContent()).toBe('Quota, events/s: unlimited');
    await call(a.adminKey, 'PATCH', '/v1/tenant', { events_per_second: null });
    await page.context().close();
  });

  it('console.schemas-check-a-draft-against-traffic-then-publish', async () => {
    const { page } = await signedIn(a.adminKey);
    await page.goto(`${server.url}/ui/schemas?type=signup`);
    const draft = { type: 'object', required: ['plan'], properties: { plan: { type: 'string', enum: ['free', 'pro'] } } };
    await page.getByLabel('draft schema').fill(JSON.stringify(draft));
    await page.getByLabel('owner').fill('growth');
    await page.getByTestId('schema-check').click();
    await expect.poll(async () => JSON.parse((await page.getByTestId('schema-report').textContent()) ?? '{}')).toMatchObject({ dry_run: true, compatible: true, traffic: { failed: 0 } });
    // …and said in words above it.
    expect(await page.getByTestId('schema-report-verdict').textContent()).toBe('Checked as v1, not published. Against no schema (this is the first version): compatible (accepts everything it accepts).');
    expect(await page.getByTestId('schema-report-traffic').textContent()).toBe(`0 of the last ${SIGNUPS} stored events would be refused.`);
    expect((await call<{ schemas: unknown[] }>(a.adminKey, 'GET', '/v1/schemas')).schemas).toEqual([]);
    await page.getByTestId('schema-publish').click();
    await expect.poll(async () => JSON.parse((await page.getByTestId('schema-report').textContent()) ?? '{}')).toMatchObject({ published: true, version: 1 });
    await expect.poll(() => page.getByTestId('schema-row').allTextContents()).toEqual([expect.stringContaining('signup')]);
    // Which version ingest enforces is on the page (it differs from the latest under a rollout or after one rolled back).
    expect(await page.getByTestId('schema-enforced').textContent()).toBe('v1');
    expect(await call(a.adminKey, 'GET', '/v1/schemas/signup')).toMatchObject({ version: 1, owner: 'growth', schema: draft });
    // The diff of v1 against nothing, a change a row.
    await page.getByTestId('schema-diff').waitFor();
    expect(await page.getByTestId('schema-diff-change').allTextContents()).toEqual([
      'add/type"object"',
      'add/required["plan"]',
      'add/properties{"plan":{"type":"string","enum":["free","pro"]}}',
    ]);
    // A next draft starts from the latest version at a click (it was only a grey placeholder).
    await page.reload();
    await page.getByTestId('schema-draft-from-latest').click();
    await expect.poll(async () => JSON.parse(await page.getByLabel('draft schema').inputValue())).toEqual(draft);
    expect(await page.getByTestId('schema-check').isEnabled()).toBe(true);
    // A narrower draft, checked: what it narrows, how many recent events it would refuse and why.
    await page.getByLabel('draft schema').fill(JSON.stringify({ ...draft, properties: { plan: { type: 'string', enum: ['pro'] } } }));
    await page.getByTestId('schema-check').click();
    await expect.poll(() => page.getByTestId('schema-report-verdict').textContent()).toMatch(/^Checked as v2, not published\. Against v1, the version ingest enforces: narrower in 1 place\.$/);
    expect(await page.getByTestId('schema-report-incompatibilities').locator('li').allTextContents()).toEqual([expect.stringMatching(/^\/properties\/plan: /)]);
    expect(await page.getByTestId('schema-report-traffic').textContent()).toBe(`${SIGNUPS} of the last ${SIGNUPS} stored events would be refused.`);
    expect(await page.getByTestId('schema-report-examples').locator('tbody tr').allTextContents()).toEqual([expect.stringMatching(new RegExp(`^/properties/plan.*${SIGNUPS}$`))]);
    await page.context().close();
  });
  it('console.a-schema-key-sees-schemas-only', async () => {
    const { key } = await call<{ key: string }>(a.adminKey, 'POST', '/v1/keys', { scope: 'schema', team: 'growth' });
    const { page } = await signedIn(key);
    await page.waitForURL(/\/ui\/schemas$/);
    expect(await page.locator('header nav a').allTextContents()).toEqual(['Schemas']);
    expect(await page.getByTestId('who').textContent()).toContain('schema (growth)');
    for (const p of ['/ui/', '/ui/explore', '/ui/live', '/ui/views']) {
      await page.goto(`${server.url}${p}`);
      if (p === '/ui/') await page.waitForURL(/\/ui\/schemas$/);
      else await page.getByTestId('forbidden').waitFor();
    }
    await page.context().close();
  });
});
