import fs from 'node:fs';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterEach, expect, it } from 'vitest';
import { freePort, keysFrom, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

let server: ServerProcess | null = null;
afterEach(async () => {
  if (server) await stop(server);
  server = null;
});

/**
 * Slowloris: clients that open connections and send their headers a byte at a time. They are
 * cut at `limits.requestTimeoutMs`, and meanwhile everyone else is served.
 */
it('slowloris.slow-clients-are-cut-at-the-request-timeout-and-others-are-served-meanwhile', async () => {
  server = await startServer(tmpDir(), await freePort(), [], { SLUICE_LIMITS_REQUEST_TIMEOUT_MS: '2000' });
  const { writeKey } = keysFrom(server.stdout);
  const url = new URL(server.url);
  const sockets: { socket: net.Socket; closedAt: number | null }[] = [];
  const opened = Date.now();
  for (let i = 0; i < 200; i++) {
    const socket = net.connect(Number(url.port), url.hostname);
    const s = { socket, closedAt: null as number | null };
    socket.on('close', () => (s.closedAt = Date.now()));
    socket.on('error', () => undefined);
    socket.write('POST /v1/events HTTP/1.1\r\nHost: x\r\n');
    sockets.push(s);
  }
  const drip = setInterval(() => {
    for (const s of sockets) if (s.closedAt === null) s.socket.write('X');
  }, 200);
  try {
    // Served while 200 slow clients hold connections.
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${writeKey}` }, body: JSON.stringify({ type: 'ok', idempotency_key: `ok-${i}` }) });
      expect(r.status).toBe(202);
    }
    for (const end = Date.now() + 10_000; Date.now() < end && sockets.some((s) => s.closedAt === null); ) await new Promise((r) => setTimeout(r, 100));
  } finally {
    clearInterval(drip);
    for (const s of sockets) s.socket.destroy();
  }
  const lifetimes = sockets.map((s) => (s.closedAt ?? Infinity) - opened);
  console.log('slowloris figures', { clients: sockets.length, cutWithinMs: Math.max(...lifetimes) });
  expect(Math.max(...lifetimes)).toBeLessThan(5_000);
  expect(server.child.exitCode).toBeNull();
}, 60_000);

/**
 * Injection through what producers control: event types, keys, property names and values
 * with SQL in them are stored as data and queried back as data.
 */
it('injection.sql-in-event-types-keys-and-property-names-is-stored-and-queried-as-data', async () => {
  server = await startServer(tmpDir(), await freePort());
  const { writeKey, readKey } = keysFrom(server.stdout);
  const evil = "x'); DROP TABLE events; --";
  const events = [
    { type: evil, key: evil, idempotency_key: `${evil}-1`, properties: { [evil]: evil, region: "eu' OR 1=1 --" }, context: { "a\"b": 1 } },
    { type: 'normal', key: 'k', idempotency_key: 'n-1', properties: { region: 'eu' } },
  ];
  const r = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${writeKey}` }, body: JSON.stringify(events) });
  expect(((await r.json()) as { accepted: number }).accepted).toBe(2);
  const q = async (body: unknown) =>
    (await (await fetch(`${server!.url}/v1/query`, { method: 'POST', headers: { authorization: `Bearer ${readKey}` }, body: JSON.stringify({ from: '-1d', interval: null, ...(body as object) }) })).json()) as {
      rows: unknown[][];
    };
  for (let i = 0; i < 100; i++) {
    if (((await q({ measures: ['count'], source: 'raw' })).rows[0]![0] as number) === 2) break;
    await new Promise((x) => setTimeout(x, 100));
  }
  expect((await q({ event: evil, measures: ['count'] })).rows).toEqual([[1]]);
  expect((await q({ measures: ['count'], filters: [{ field: 'key', op: 'eq', value: evil }] })).rows).toEqual([[1]]);
  expect((await q({ measures: ['count'], group_by: ['properties.region'], order_by: 'properties.region' })).rows).toEqual([
    ['eu', 1],
    ["eu' OR 1=1 --", 1],
  ]);
  const lineage = await (await fetch(`${server.url}/v1/events/${encodeURIComponent(`${evil}-1`)}`, { headers: { authorization: `Bearer ${readKey}` } })).json();
  expect(lineage).toMatchObject({ status: 'stored', stored: { type: evil, key: evil, properties: { [evil]: evil } } });
}, 60_000);

function rssOf(pid: number | undefined): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/**
 * Oversized bodies and gzip bombs, many at once: each is refused (413) as it crosses its
 * limit, nothing of them is appended, and the server's memory does not follow their size.
 */
it('oversized.bodies-and-gzip-bombs-get-413-and-memory-stays-bounded', async () => {
  server = await startServer(tmpDir(), await freePort());
  const { writeKey } = keysFrom(server.stdout);
  const oversized = Buffer.from(JSON.stringify([{ type: 'big', properties: { pad: 'x'.repeat(1_600_000) } }]));
  // 100 MB of JSON whitespace and one event: about 100 KB compressed, 10x the decompressed limit.
  const bomb = gzipSync(Buffer.concat([Buffer.from('['), Buffer.alloc(100 * 1024 * 1024, 0x20), Buffer.from('{"type":"boom"}]')]));
  const before = rssOf(server.child.pid);
  const rss: number[] = [];
  const statuses: number[] = [];
  for (let round = 0; round < 10; round++) {
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        fetch(`${server!.url}/v1/events`, {
          method: 'POST',
          headers: { authorization: `Bearer ${writeKey}`, ...(i % 2 ? { 'content-encoding': 'gzip' } : {}) },
          body: i % 2 ? bomb : oversized,
        }).then(
          (r) => r.status,
          () => 413,
        ),
      ),
    );
    statuses.push(...answers);
    rss.push(rssOf(server.child.pid));
  }
  const mib = (b: number) => Math.round(b / 1_048_576);
  const firstHalf = Math.max(...rss.slice(0, 5));
  const secondHalf = Math.max(...rss.slice(5));
  console.log('oversized figures', { requests: statuses.length, rssBeforeMiB: mib(before), rssMaxFirstHalfMiB: mib(firstHalf), rssMaxSecondHalfMiB: mib(secondHalf) });
  expect(new Set(statuses)).toEqual(new Set([413]));
  // Memory follows the limits times the concurrency (5 bombs x 10 MiB decompressed at a time),
  // not the bombs' size (5 x 100 MB), and does not grow from round to round.
  expect(secondHalf - before).toBeLessThan(200 * 1_048_576);
  expect(secondHalf).toBeLessThanOrEqual(firstHalf * 1.15);
  const ok = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${writeKey}` }, body: JSON.stringify({ type: 'fine' }) });
  expect(ok.status).toBe(202);
}, 60_000);
