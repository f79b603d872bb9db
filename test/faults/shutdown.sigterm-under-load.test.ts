import path from 'node:path';
import { expect, it } from 'vitest';
import { SluiceClient } from '../../src/client/index.js';
import { storeFacts } from '../helpers/duckdb.js';
import { freePort, keysFrom, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

const EVENTS = 60_000;
const STOPS = 3;

/**
 * `sluice up` is stopped with SIGTERM several times while the producer SDK sends: each stop
 * drains what is in flight and exits 0, the SDK retries through the outage with the same
 * keys, and at the end every event is stored exactly once.
 */
it('shutdown.sigterm-under-load-drains-exits-0-and-loses-or-doubles-nothing', async () => {
  const dataDir = tmpDir();
  const port = await freePort();
  let server: ServerProcess = await startServer(dataDir, port);
  const { writeKey, readKey } = keysFrom(server.stdout);
  const day = Math.floor(Date.now() / 86_400_000) * 86_400_000 - 86_400_000;
  const dropped: number[] = [];
  const client = new SluiceClient({ url: server.url, writeKey, maxBatchEvents: 500, flushIntervalMs: 20, maxAttempts: 0, retryBaseMs: 20, retryMaxMs: 200, overflow: 'block', onDrop: (e) => dropped.push(e.length) });

  let sent = 0;
  const producer = (async () => {
    for (; sent < EVENTS; sent++) await client.track(sent % 3 ? 'checkout' : 'view', { n: sent }, { key: `user-${sent % 500}`, ts: new Date(day + (sent % 3_600_000)) });
    await client.flush();
  })();

  const exits: (number | null)[] = [];
  for (let i = 0; i < STOPS; i++) {
    while (sent < ((i + 1) * EVENTS) / (STOPS + 1)) await new Promise((r) => setTimeout(r, 20));
    exits.push(await stop(server));
    server = await startServer(dataDir, port);
  }
  await producer;
  await client.close();
  // What was acknowledged is durable in the log; let the last server move it all to the store.
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const r = await fetch(`${server.url}/v1/query`, { method: 'POST', headers: { authorization: `Bearer ${readKey}` }, body: JSON.stringify({ from: new Date(day).toISOString(), to: new Date(day + 86_400_000).toISOString(), interval: null, measures: ['count'], source: 'raw' }) });
    if (((await r.json()) as { rows: [number][] }).rows[0]?.[0] === EVENTS) break;
  }
  expect(await stop(server)).toBe(0);

  const facts = await storeFacts(path.join(dataDir, 'store.duckdb'), 'default');
  const figures = { sent: EVENTS, acknowledged: client.stats.accepted + client.stats.duplicates, stored: facts.events, duplicates: facts.events - facts.distinctKeys, lost: EVENTS - facts.distinctKeys, stops: exits.length, retries: client.stats.retries };
  console.log('sigterm test figures', figures);
  expect(exits).toEqual(Array(STOPS).fill(0));
  expect(dropped).toEqual([]);
  expect(client.stats.sent).toBe(EVENTS);
  expect(facts.distinctKeys).toBe(EVENTS);
  expect(facts.events).toBe(EVENTS);
  expect(facts.counted).toBe(EVENTS);
}, 180_000);
