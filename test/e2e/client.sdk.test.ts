import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceClient, type TrackedEvent } from '../../src/client/index.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * The producer SDK against a real sluice over HTTP. Faults on the wire come from a small
 * proxy in front of it that answers 503, 429 or cuts the connection for chosen requests, and
 * otherwise forwards them: the log and the store behind it are the real ones.
 */

let p: Pipeline;
let url: string;
beforeAll(async () => {
  p = await startPipeline();
  url = await p.app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await p.close();
});

type Fault = 'ok' | '503' | '429' | 'cut' | 'forward-then-cut';

/** A proxy to sluice; `faults` is consumed one per request (then everything is forwarded). */
async function proxy(faults: Fault[]): Promise<{ url: string; requests: { encoding?: string; bytes: number }[]; close(): Promise<void> }> {
  const requests: { encoding?: string; bytes: number }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ ...(req.headers['content-encoding'] ? { encoding: req.headers['content-encoding'] } : {}), bytes: body.length });
      const fault = faults.shift() ?? 'ok';
      if (fault === '503') return void res.writeHead(503, { 'content-type': 'application/json' }).end('{"code":"SLUICE_ERR_OVERLOADED","message":"busy"}');
      if (fault === '429') return void res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"code":"SLUICE_ERR_QUOTA_EXCEEDED","message":"slow down"}');
      if (fault === 'cut') return void req.socket.destroy();
      const fwd = http.request(url + req.url, { method: req.method, headers: req.headers }, (r) => {
        const out: Buffer[] = [];
        r.on('data', (c: Buffer) => out.push(c));
        r.on('end', () => {
          // The server committed the batch, but the answer is lost: the client must retry with the same keys.
          if (fault === 'forward-then-cut') return void req.socket.destroy();
          res.writeHead(r.statusCode ?? 502, r.headers).end(Buffer.concat(out));
        });
      });
      fwd.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function storedCount(): Promise<number> {
  return (await p.store.rawStats('acme')).events;
}

describe('the producer SDK', () => {
  it('client.batches-by-count-gzips-and-delivers-each-event-once-through-503-429-and-lost-answers', async () => {
    const before = await storedCount();
    const px = await proxy(['503', 'forward-then-cut', 'cut', '429']);
    const errors: Error[] = [];
    const client = new SluiceClient<{ checkout: { amount: number } }>({ url: px.url, writeKey: p.tenant.writeKey, maxBatchEvents: 100, flushIntervalMs: 50, retryBaseMs: 10, onError: (e) => errors.push(e) });
    for (let i = 0; i < 450; i++) await client.track('checkout', { amount: i }, { key: `user-${i % 7}` });
    await client.close();
    expect(errors).toEqual([]);
    expect(client.stats).toMatchObject({ queued: 450, sent: 450, dropped: 0 });
    expect(client.stats.accepted + client.stats.duplicates).toBe(450);
    expect(client.stats.duplicates).toBe(100);
    expect(client.stats.retries).toBe(4);
    expect(px.requests.every((r) => r.encoding === 'gzip')).toBe(true);
    await until(async () => (await storedCount()) === before + 450);
    expect((await p.store.rawStats('acme')).distinctKeys).toBe(before + 450);
    await px.close();
  });

  it('client.never-retries-other-4xx-and-reports-per-event-rejections', async () => {
    const dropped: [number, string][] = [];
    const errors: Error[] = [];
    const rejected: string[] = [];
    const bad = new SluiceClient({ url, writeKey: p.tenant.readKey, onError: (e) => errors.push(e), onDrop: (ev, why) => dropped.push([ev.length, why]), retryBaseMs: 10 });
    await bad.track('x', {});
    await bad.close();
    expect(bad.stats.retries).toBe(0);
    expect(errors[0]?.message).toMatch(/^403 SLUICE_ERR_FORBIDDEN/);
    expect(dropped).toEqual([[1, 'rejected']]);

    const good = new SluiceClient({ url, writeKey: p.tenant.writeKey, onRejected: (r) => rejected.push(`${r[0]!.event.type}:${r[0]!.path}`) });
    await good.track('ok', { n: 1 });
    await good.track('bad', { n: 1 }, { ts: 'yesterday' });
    await good.close();
    expect(rejected).toEqual(['bad:/ts']);
    expect(good.stats).toMatchObject({ accepted: 1, rejected: 1 });
    await expect(good.track('late', {})).rejects.toThrow(/closed/);
  });

  it('client.bounded-buffer-drops-the-oldest-or-blocks', async () => {
    const px = await proxy(Array(3).fill('503'));
    const drops: TrackedEvent[] = [];
    const dropping = new SluiceClient({ url: px.url, writeKey: p.tenant.writeKey, maxBufferEvents: 20, maxBatchEvents: 10, flushIntervalMs: 10_000, retryBaseMs: 50, onDrop: (ev) => drops.push(...ev) });
    for (let i = 0; i < 100; i++) await dropping.track('burst', { i });
    // One batch of 10 is in flight (retrying), 20 wait; the other 70 were dropped, oldest first.
    expect(dropping.stats.dropped).toBe(70);
    expect(drops[0]!.properties).toEqual({ i: 10 });
    await dropping.close();
    expect(dropping.stats.sent).toBe(30);

    const blocking = new SluiceClient({ url, writeKey: p.tenant.writeKey, maxBufferEvents: 5, maxBatchEvents: 5, overflow: 'block' });
    for (let i = 0; i < 50; i++) await blocking.track('blocked', { i });
    await blocking.close();
    expect(blocking.stats).toMatchObject({ dropped: 0, sent: 50, accepted: 50 });
    await px.close();
  });
});
