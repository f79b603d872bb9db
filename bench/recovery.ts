import { batchBodies, post, queriedTotal } from './load.js';
import { freePort, startSluice, type Child } from './proc.js';

/**
 * The recovery paths, beside the live path measured in the same server:
 *
 *   replay     N dead letters (they failed their schema at the door) replayed after the
 *              schema is fixed, until queryable, vs the same number of live events sent →
 *              queryable
 *   backfill   counts_1m rebuilt from the raw events while live load runs at a steady rate;
 *              live freshness p99 during the backfill vs the same load without it
 */

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const TYPES = ['page_view', 'click', 'checkout', 'signup'];

function adminKey(stdout: string): string {
  const m = /admin key:\s+(\S+)/.exec(stdout);
  if (!m) throw new Error('no admin key in the output of sluice up');
  return m[1]!;
}

async function call(c: Child, key: string, method: string, path: string, body?: unknown): Promise<any> {
  const r = await fetch(`${c.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status}: ${text}`);
  return JSON.parse(text);
}

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? NaN;
}

/** Sends `rate` events/s in small batches until stopped; returns how many it sent. */
function steadyLoad(c: Child, key: string, rate: number, run: string): { stop: () => Promise<number> } {
  let live = true;
  let sent = 0;
  const done = (async () => {
    const start = performance.now();
    for (let i = 0; live; i++) {
      const [body] = batchBodies(`${run}-${i}`, 100, 100);
      await post(c.url, key, [body!], () => 100, 1);
      sent += 100;
      const due = start + (sent / rate) * 1000 - performance.now();
      if (due > 0) await sleep(due);
    }
  })();
  return {
    async stop() {
      live = false;
      await done;
      return sent;
    },
  };
}

async function freshnessSamples(c: Child, key: string, ms: number): Promise<number[]> {
  const out: number[] = [];
  for (const end = performance.now() + ms; performance.now() < end; await sleep(100)) {
    out.push((await call(c, key, 'GET', '/v1/status')).freshness_seconds as number);
  }
  return out;
}

export async function recovery(dataDir: string, n: number, batch: number, concurrency: number, say: (s: string) => void) {
  const c = await startSluice(dataDir, await freePort());
  try {
    const write = /write key:\s+(\S+)/.exec(c.stdout)![1]!;
    const read = /read key:\s+(\S+)/.exec(c.stdout)![1]!;
    const admin = adminKey(c.stdout);
    const strict = { type: 'object', properties: { plan: { enum: ['free'] } } };
    for (const type of TYPES) await call(c, admin, 'PUT', `/v1/schemas/${type}`, { owner: 'bench', schema: strict });

    say(`recovery: ${n} live events, sent → queryable (baseline)`);
    const perBody = (i: number): number => Math.min(batch, n - i * batch);
    let t = performance.now();
    const liveBodies = batchBodies(`live-${Date.now()}`, n, batch).map((b) => Buffer.from(b.toString().replace(/"plan":"pro"/g, '"plan":"free"')));
    await post(c.url, write, liveBodies, perBody, concurrency);
    while ((await queriedTotal(c.url, read)) < n) await sleep(100);
    const liveRate = n / ((performance.now() - t) / 1000);

    say(`recovery: ${n} events that fail their schema, dead-lettered at the door`);
    await post(c.url, write, batchBodies(`dead-${Date.now()}`, n, batch), perBody, concurrency);
    while (((await call(c, admin, 'GET', '/v1/status')).dead_letters.total as number) < n) await sleep(200);

    const fixed = { type: 'object', properties: { plan: { enum: ['free', 'pro'] } } };
    for (const type of TYPES) await call(c, admin, 'PUT', `/v1/schemas/${type}`, { schema: fixed });
    say('recovery: replaying them after the fix, until queryable');
    t = performance.now();
    let cursor: string | null = null;
    let replayed = 0;
    do {
      const r: { replayed: number; cursor: string | null } = await call(c, admin, 'POST', '/v1/dlq/replay', { limit: 10_000, cursor });
      replayed += r.replayed;
      cursor = r.cursor;
    } while (cursor !== null);
    while ((await queriedTotal(c.url, read)) < 2 * n) await sleep(100);
    const replayRate = replayed / ((performance.now() - t) / 1000);

    say('recovery: live freshness under a steady 5,000 ev/s, without then with a backfill');
    const base = steadyLoad(c, write, 5_000, `steady-a-${Date.now()}`);
    await sleep(2_000);
    const without = await freshnessSamples(c, admin, 8_000);
    await base.stop();
    const load = steadyLoad(c, write, 5_000, `steady-b-${Date.now()}`);
    await sleep(2_000);
    t = performance.now();
    const started: { id: string; total: number } = await call(c, admin, 'POST', '/v1/backfills', { view: 'counts_1m' });
    const during: number[] = [];
    for (;;) {
      during.push((await call(c, admin, 'GET', '/v1/status')).freshness_seconds as number);
      const s = await call(c, admin, 'GET', `/v1/backfills/${started.id}`);
      if (s.status !== 'running') break;
      await sleep(100);
    }
    const backfillSeconds = (performance.now() - t) / 1000;
    await load.stop();
    return {
      liveRate,
      replayRate,
      replayed,
      backfill: { rows: started.total, seconds: backfillSeconds, rate: started.total / backfillSeconds },
      freshnessP99: { without: p99(without), during: p99(during) },
    };
  } finally {
    await c.stop();
  }
}
