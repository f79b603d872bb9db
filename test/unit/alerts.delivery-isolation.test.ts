import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { alertServices } from '../../src/alerts/service.js';
import type { AlertSource } from '../../src/alerts/source.js';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import { ManualClock } from '../../src/core/clock.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * One receiver's slowness must not hold up another's: a webhook that accepts the connection
 * and never answers, with seven notifications queued for it (the oldest in the outbox), beside
 * a healthy receiver of the same tenant and one of another tenant. Real catalog (SQLite), real
 * TCP; the delivery service runs on a ManualClock.
 */
describe('outbox delivery: receivers are independent', () => {
  const closers: (() => void)[] = [];
  afterEach(() => closers.splice(0).forEach((c) => c()));

  /** Accepts TCP connections and never answers; records each request's Idempotency-Key. */
  async function silent(): Promise<{ url: string; keys: string[] }> {
    const keys: string[] = [];
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => {
      sockets.push(socket);
      let data = '';
      let seen = false;
      socket.on('data', (c) => {
        data += c.toString();
        const m = /idempotency-key: ([^\r\n]+)/i.exec(data);
        if (m && !seen) keys.push(m[1]!);
        seen ||= m !== null;
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => {
      sockets.forEach((s) => s.destroy());
      server.close();
    });
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, keys };
  }

  async function healthy(): Promise<{ url: string; at: number[] }> {
    const at: number[] = [];
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        at.push(performance.now());
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => server.close());
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, at };
  }

  it('delivery.a-silent-webhook-delays-neither-its-tenants-other-receiver-nor-another-tenant', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const catalog = new SqliteCatalog(path.join(tmpDir('sluice-alerts-delivery-'), 'sluice.db'));
    const store = catalog.alerts;
    const [hush, okA, okB] = [await silent(), await healthy(), await healthy()];
    const queue = (tenant: string, id: string, receiver: string, url: string) =>
      store.saveEvaluation({ tenant, states: [], transitions: [], notifications: [{ id, receiver, body: { type: 'webhook', url, group: '{}', payloads: [{ id }] }, nextAt: clock.now() }], objects: [] });
    // Seven alerts routed to the silent webhook, queued first (the oldest, as in the trial).
    for (let i = 1; i <= 7; i++) await queue('alpha', `0-silent-${i}`, 'silent', hush.url);
    await queue('alpha', '1-healthy-a', 'oncall', okA.url);
    await queue('beta', '2-healthy-b', 'oncall', okB.url);

    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c)) as Record<string, unknown>), cb()) }));
    const source: AlertSource = { watermark: async () => clock.now(), counts: async () => new Map(), ruleData: async () => ({}) };
    const timeoutMs = 1_500;
    const services = alertServices({ store, source, clock, logger, evaluateIntervalMs: 3_600_000, deliverIntervalMs: 1_000, leaseTtlMs: 60_000, externalUrl: '', tenants: async () => [], deliveryTimeoutMs: timeoutMs });
    const abort = new AbortController();
    const t0 = performance.now();
    for (const s of services) await s.start(abort.signal);

    // Both healthy receivers answer within the first pass, long before the silent one's timeout.
    const delivered = async () => (await store.notificationCounts()).filter((c) => c.delivered > 0).map((c) => `${c.tenant}/${c.receiver}`);
    while ((await delivered()).length < 2 && performance.now() - t0 < 5 * timeoutMs) await new Promise((r) => setTimeout(r, 10));
    expect(await delivered()).toEqual(['alpha/oncall', 'beta/oncall']);
    expect(Math.max(okA.at[0]!, okB.at[0]!) - t0).toBeLessThan(timeoutMs / 2);
    // One request in flight for the silent receiver, its oldest notification.
    expect(hush.keys).toEqual(['0-silent-1']);

    // Its timeout: the failure is logged naming the receiver and the error.
    while (!lines.some((l) => l.msg === 'alert notifications failed; will retry with backoff') && performance.now() - t0 < 10 * timeoutMs) await new Promise((r) => setTimeout(r, 20));
    const warn = lines.find((l) => l.msg === 'alert notifications failed; will retry with backoff')!;
    expect(warn).toMatchObject({ tenant: 'alpha', receiver: 'silent', notification: '0-silent-1', attempts: 1 });
    expect(String(warn.err)).toContain(`did not answer within ${timeoutMs} ms`);
    // The failed receiver waits for its backoff (not the next pass), then its oldest goes first again: its order holds.
    const [failed] = await store.dueNotifications(Number.MAX_SAFE_INTEGER, 1);
    expect(failed).toMatchObject({ id: '0-silent-1', attempts: 1 });
    await clock.advance(failed!.nextAt - clock.now() - 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(hush.keys).toEqual(['0-silent-1']);
    await clock.advance(1_000);
    while (hush.keys.length < 2 && performance.now() - t0 < 20 * timeoutMs) await new Promise((r) => setTimeout(r, 10));
    expect(hush.keys).toEqual(['0-silent-1', '0-silent-1']);

    // Stopping aborts the request in flight: it stays due, nothing is marked.
    for (const s of [...services].reverse()) await s.stop();
    expect((await store.dueNotifications(Number.MAX_SAFE_INTEGER, 100)).map((n) => n.id)).toEqual(['0-silent-1', '0-silent-2', '0-silent-3', '0-silent-4', '0-silent-5', '0-silent-6', '0-silent-7']);
    await catalog.close();
  }, 30_000);

  it('outbox.due-notifications-take-receivers-in-turn-so-one-backlog-does-not-fill-a-page', async () => {
    const catalog = new SqliteCatalog(path.join(tmpDir('sluice-alerts-delivery-'), 'sluice.db'));
    const store = catalog.alerts;
    const queue = (tenant: string, id: string, receiver: string) => store.saveEvaluation({ tenant, states: [], transitions: [], notifications: [{ id, receiver, body: {}, nextAt: 1 }], objects: [] });
    for (let i = 1; i <= 5; i++) await queue('alpha', `0-silent-${i}`, 'silent');
    await queue('alpha', '1-a', 'oncall');
    await queue('beta', '2-b', 'oncall');
    await queue('beta', '3-b', 'oncall');
    expect((await store.dueNotifications(10, 4)).map((n) => n.id)).toEqual(['0-silent-1', '1-a', '2-b', '0-silent-2']);
    expect((await store.dueNotifications(10, 100)).map((n) => n.id)).toEqual(['0-silent-1', '1-a', '2-b', '0-silent-2', '3-b', '0-silent-3', '0-silent-4', '0-silent-5']);
    await catalog.close();
  });
});
