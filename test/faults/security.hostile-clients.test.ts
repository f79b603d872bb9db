import net from 'node:net';
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
