import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { storeFacts } from '../helpers/duckdb.js';
import { freePort, keysFrom, kill9, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/** 1M, as the fault suite asks; FAULT_KILL_EVENTS=N for a quicker run. */
const EVENTS = Number(process.env.FAULT_KILL_EVENTS ?? 1_000_000);
const BATCH = 1_000;
const IN_FLIGHT = 4;
const MIN_KILLS = 5;

/** Yesterday, UTC: event times inside the lateness window whenever the test runs. */
const DAY = Math.floor(Date.now() / 86_400_000) * 86_400_000 - 86_400_000;

/**
 * A producer sends 1M events in batches and retries every batch until it is acknowledged,
 * with the same idempotency keys. Meanwhile `sluice up` (the log, and the worker thread in
 * it) is killed with SIGKILL at random moments, every 2 s on average, and restarted. At the end, every acknowledged event is stored
 * exactly once. `keys`: `e-N` (they arrive in the order they sort) or a random UUID per event.
 */
export async function killNineUnderLoad(keys: 'sequential' | 'uuid', env: NodeJS.ProcessEnv = {}): Promise<void> {
  const dataDir = tmpDir();
  const port = await freePort();
  let server: ServerProcess = await startServer(dataDir, port, [], env);
  const { writeKey, readKey } = keysFrom(server.stdout);
  const url = server.url;

  const acked = new Set<string>();
  let retries = 0;
  let kills = 0;

  const sendBatch = async (b: number): Promise<void> => {
    const events = Array.from({ length: BATCH }, (_, i) => {
      const n = b * BATCH + i;
      return { type: n % 2 ? 'checkout' : 'view', key: `user-${n % 1000}`, ts: new Date(DAY + 8 * 3_600_000 + n).toISOString(), idempotency_key: keys === 'uuid' ? randomUUID() : `e-${n}` };
    });
    const body = JSON.stringify(events);
    for (;;) {
      try {
        const r = await fetch(`${url}/v1/events`, { method: 'POST', body, headers: { authorization: `Bearer ${writeKey}`, 'content-type': 'application/json' } });
        if (r.status === 202) {
          const reply = (await r.json()) as { accepted: number; duplicates: number; rejected: unknown[] };
          expect(reply.rejected).toEqual([]);
          expect(reply.accepted + reply.duplicates).toBe(BATCH);
          for (const e of events) acked.add(e.idempotency_key);
          return;
        }
        expect(r.status).toBeGreaterThanOrEqual(500);
      } catch {
        // Connection refused or reset: the server is down. Retry the same batch.
      }
      retries++;
      await new Promise((res) => setTimeout(res, 20 + Math.random() * 80));
    }
  };

  const producer = (async () => {
    const batches = EVENTS / BATCH;
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < batches) await sendBatch(next++);
      }),
    );
  })();

  // Kills go on until the store has caught up: the worker thread dies mid-batch too.
  let drained = false;
  const killer = (async () => {
    while (!drained || kills < MIN_KILLS) {
      await new Promise((res) => setTimeout(res, 1_000 + Math.random() * 2_000));
      await kill9(server);
      kills++;
      server = await startServer(dataDir, port, [], env);
    }
  })();

  await producer;
  expect(acked.size).toBe(EVENTS);

  // The pipeline drains, through more kills: the watermark passes the last acknowledgement.
  const lastAck = Date.now();
  const count = async (): Promise<{ total: number; caughtUp: boolean } | null> => {
    try {
      const r = await fetch(`${url}/v1/query`, {
        method: 'POST',
        headers: { authorization: `Bearer ${readKey}` },
        body: JSON.stringify({ from: new Date(DAY).toISOString(), to: new Date(DAY + 86_400_000).toISOString(), interval: '1d', measures: ['count'] }),
      });
      if (r.status !== 200) return null;
      const q = (await r.json()) as { rows: [string, number][]; watermark: string };
      return { total: q.rows.reduce((s, [, n]) => s + n, 0), caughtUp: Date.parse(q.watermark) >= lastAck };
    } catch {
      return null; // Down between a kill and its restart.
    }
  };
  for (const deadline = Date.now() + 180_000; !drained && Date.now() < deadline; await new Promise((res) => setTimeout(res, 100))) drained = (await count())?.caughtUp ?? false;
  drained = true;
  await killer;
  let total = 0;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((res) => setTimeout(res, 100))) {
    const c = await count();
    if (c?.caughtUp) {
      total = c.total;
      break;
    }
  }
  expect(await stop(server)).toBe(0);
  const facts = await storeFacts(path.join(dataDir, 'store.duckdb'), 'default');
  const figures = { sent: EVENTS, acknowledged: acked.size, stored: facts.events, counted: total, duplicates: facts.events - facts.distinctKeys, lost: acked.size - facts.distinctKeys, kills, retries };
  console.log(`crash test figures (${keys} keys)`, figures);
  expect(kills).toBeGreaterThanOrEqual(MIN_KILLS);
  expect(facts.distinctKeys).toBe(acked.size);
  expect(facts.events).toBe(acked.size);
  expect(facts.counted).toBe(acked.size);
  expect(total).toBe(acked.size);
}
