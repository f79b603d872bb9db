import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DuckdbStore, type DuckdbStoreOptions } from '../src/backends/duckdb/store.js';
import { parseQuery, type QuerySpec } from '../src/core/query.js';
import type { LogRecord } from '../src/core/types.js';
import { percentile } from './load.js';

/**
 * A tenant's heavy queries against its neighbour's small ones (issue 26, item 3), on one
 * embedded DuckDB store with sluice's default read pool (query.readers 4,
 * query.readersPerTenant 2, store.threads 1, store.memoryMb 512).
 *
 * Tenant alpha holds 600,000 events over 200,000 keys and runs a raw group-by per key (count,
 * uniq, p95) from six callers at once, more than the pool lets it run; tenant beta holds 2,000
 * events and runs a small raw count and sum, one after another. Beta's latencies are taken in
 * three conditions, alternating within each round so that the machine's other load falls on
 * all three alike:
 *   quiet     beta alone (the baseline);
 *   attacked  alpha's six callers at work;
 *   one core  instead of alpha, one thread of this process spinning (no DuckDB, no memory):
 *             what losing one core's worth of CPU costs beta on this machine by itself,
 *             whoever takes it. Attacked near one core means the store shares no more than
 *             a core with alpha (no lock, no buffer, no second thread).
 * Reported: beta's p50 and p95 per condition and their ratios to quiet (target: attacked p95
 * ≤ 2x quiet), alpha's outcomes, the machine's load average.
 */

export interface NeighbourQueriesBench {
  rounds: number;
  perRound: number;
  heavyMs: number;
  quiet: { p50: number; p95: number };
  attacked: { p50: number; p95: number };
  oneCore: { p50: number; p95: number };
  alpha: { done: number; timedOut: number; refused: number; other: number };
  load: [number, number];
}

const now = Date.now();
const limits = { maxBuckets: 10_000 } as never;
const range = { from: new Date(now - 7_200_000).toISOString(), to: new Date(now + 60_000).toISOString(), interval: null, source: 'raw' };
const heavy = (): QuerySpec => parseQuery({ event: 'order', ...range, group_by: ['key'], measures: ['count', 'uniq:properties.note', 'p95:amount'], limit: 10 }, 'alpha', now, limits);
const small = (): QuerySpec => parseQuery({ event: 'order', ...range, measures: ['count', 'sum:amount'] }, 'beta', now, limits);

async function fill(store: DuckdbStore, tenant: string, n: number, keys: number, offset: { n: number }): Promise<void> {
  for (let done = 0; done < n; done += 20_000) {
    const records: LogRecord[] = Array.from({ length: Math.min(20_000, n - done) }, (_, i) => {
      offset.n++;
      const properties = JSON.stringify({ amount: (done + i) % 977, note: randomBytes(8).toString('hex') });
      return { tenant, type: 'order', key: `k${(done + i) % keys}`, idempotencyKey: `${tenant}-${offset.n}`, ts: now - ((done + i) % 3_600_000), receivedAt: now, partition: 0, origin: 'live', properties, context: '{}', offset: offset.n, attempt: 1 };
    });
    await store.commit({ records, partitions: [{ partition: 0, token: 1, upTo: offset.n }] });
  }
}

export async function neighbourQueriesBench(dir: string, rounds: number, perRound: number, say: (s: string) => void, options: Partial<DuckdbStoreOptions> = {}): Promise<NeighbourQueriesBench> {
  const store = new DuckdbStore({ file: path.join(dir, 'neighbour-queries.duckdb'), memoryMb: 512, ...options });
  await store.connect();
  try {
    say('neighbour queries: loading alpha (600,000 events) and beta (2,000)');
    const offset = { n: 0 };
    await fill(store, 'alpha', 600_000, 200_000, offset);
    await fill(store, 'beta', 2_000, 100, offset);
    await store.query(heavy(), 10_000);
    let t = performance.now();
    await store.query(heavy(), 10_000);
    const heavyMs = performance.now() - t;

    const timeSmall = async (into: number[]): Promise<void> => {
      for (let i = 0; i < perRound; i++) {
        t = performance.now();
        const r = await store.query(small(), 10_000);
        into.push(performance.now() - t);
        if (r.rows[0]![0] !== 2_000) throw new Error(`beta's count was ${String(r.rows[0]![0])}, not 2,000`);
      }
    };
    const alpha = { done: 0, timedOut: 0, refused: 0, other: 0 };
    const ms = { quiet: [] as number[], attacked: [] as number[], oneCore: [] as number[] };
    const load0 = os.loadavg()[0]!;
    await timeSmall([]); // warm
    for (let round = 0; round < rounds; round++) {
      say(`neighbour queries: round ${round + 1} of ${rounds}`);
      await timeSmall(ms.quiet);

      let attacking = true;
      const caller = async (): Promise<void> => {
        while (attacking) {
          await store.query(heavy(), 10_000).then(
            () => alpha.done++,
            (e: Error) => (/timeout/.test(e.message) ? alpha.timedOut++ : /free reader/.test(e.message) ? alpha.refused++ : alpha.other++),
          );
        }
      };
      const callers = Array.from({ length: 6 }, caller);
      await new Promise((r) => setTimeout(r, 200));
      await timeSmall(ms.attacked);
      attacking = false;
      await Promise.all(callers);

      const spinner = new Worker('for (;;) {}', { eval: true });
      await new Promise((r) => setTimeout(r, 50));
      await timeSmall(ms.oneCore);
      await spinner.terminate();
    }
    const q = (xs: number[]) => ({ p50: percentile(xs, 0.5), p95: percentile(xs, 0.95) });
    return { rounds, perRound, heavyMs, quiet: q(ms.quiet), attacked: q(ms.attacked), oneCore: q(ms.oneCore), alpha, load: [load0, os.loadavg()[0]!] };
  } finally {
    await store.close();
  }
}

/** The bench's lines for run.ts. */
export function neighbourQueriesLines(r: NeighbourQueriesBench, fmt: (n: number, digits?: number) => string): string[] {
  const line = (name: string, x: { p50: number; p95: number }) =>
    `  ${name.padEnd(48)}p50 ${fmt(x.p50, 1).padStart(6)} ms   p95 ${fmt(x.p95, 1).padStart(6)} ms   ratio p95 ${fmt(x.p95 / r.quiet.p95, 2)}, p50 ${fmt(x.p50 / r.quiet.p50, 2)}`;
  return [
    '',
    `neighbour queries: beta's small raw query (${r.rounds} rounds of ${r.perRound} per condition, alternating), alpha's heavy group-by takes ${fmt(r.heavyMs)} ms alone; load average ${fmt(r.load[0], 1)} → ${fmt(r.load[1], 1)}`,
    line('baseline: beta alone', r.quiet),
    line("under alpha's heavy queries (6 callers)", r.attacked),
    line('control: one core taken by a spinning thread', r.oneCore),
    `  ratio attacked / baseline (p95)                 ${fmt(r.attacked.p95 / r.quiet.p95, 2).padStart(6)}        target ≤ 2: ${r.attacked.p95 <= 2 * r.quiet.p95 ? 'met' : 'MISSED'}`,
    `  alpha: ${r.alpha.done} done, ${r.alpha.timedOut} timed out, ${r.alpha.refused} refused after waiting for a reader, ${r.alpha.other} other errors`,
  ];
}
