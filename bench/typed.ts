import path from 'node:path';
import { DuckdbStore } from '../src/backends/duckdb/store.js';
import type { LogRecord } from '../src/core/types.js';
import { parseQuery, type QuerySpec } from '../src/core/query.js';
import { typedBackfillName } from '../src/ports/typed-columns.js';
import { percentile } from './load.js';

/**
 * Typed columns (ports/typed-columns.ts) at scale: N events of one type committed through
 * Store.commit in batches of the worker's commit size (20,000 by default), half before the
 * type's schema properties get columns and half after (the commit fills them), the first half
 * filled by backfill. Every batch is also committed to a baseline store that never gets typed
 * columns, back to back: the ratio of the two stores' rates over the second half is what the
 * columns cost at commit (over the first half it shows the noise: both stores are alike then).
 * Then, over every event:
 *   - a group-by with count and sum on declared properties, from the typed columns beside the
 *     same query from the JSON (the baseline, same store, same run);
 *   - the same on undeclared properties: from the JSON for the first ten queries (what a
 *     property without a column costs), then from the columns those ten reads promoted.
 * Latencies are of Store.query, p50 and p95 of several runs after one warm-up.
 */

const T0 = Date.UTC(2026, 10, 23, 0, 0);
const DAY = 86_400_000;
const REGIONS = ['eu-west', 'eu-north', 'us-east', 'us-west', 'apac', 'latam', 'africa', 'me', 'ca', 'au'];
const PLANS = ['free', 'pro', 'team', 'enterprise'];
/** What the schema declares; `plan` and `coupon` stay undeclared. */
const DECLARED = ['region', 'amount', 'latency_ms'];

function records(from: number, count: number): LogRecord[] {
  const out = new Array<LogRecord>(count);
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    const n = from + i;
    out[i] = {
      tenant: 'bench',
      type: 'checkout',
      key: `user-${(n * 7919) % 200_000}`,
      idempotencyKey: `t-${n}`,
      ts: T0 + ((n * 104_729) % DAY),
      receivedAt: now,
      partition: 0,
      origin: 'live',
      properties: `{"region":"${REGIONS[(n >> 3) % REGIONS.length]}","amount":${(n % 10_000) / 100},"latency_ms":${1 + ((n * 31) % 2000)},"plan":"${PLANS[n % PLANS.length]}","coupon":${n % 7}}`,
      context: '{"app":"web"}',
      offset: n + 1,
      attempt: 1,
    };
  }
  return out;
}

async function timed(runs: number, fn: () => Promise<unknown>): Promise<{ p50: number; p95: number }> {
  await fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return { p50: percentile(ms, 0.5), p95: percentile(ms, 0.95) };
}

export interface TypedBench {
  events: number;
  /** Events per commit. */
  batch: number;
  /** Commit rates (ev/s) over the second half: the baseline store and the one filling typed columns. */
  loadPlain: number;
  loadTyped: number;
  /** The two stores' rate ratio over the first half, where neither has typed columns: how far the machine's noise moves the ratio. */
  aa: number;
  /** Rows per second the backfill filled the columns at. */
  buildRate: number;
  declaredJson: { p50: number; p95: number };
  declaredTyped: { p50: number; p95: number };
  undeclaredJson: { p50: number; p95: number };
  /** The same once the ten reads promoted its properties and their columns were built. */
  undeclaredPromoted: { p50: number; p95: number };
  promoted: string[];
  /** Whether the typed query really read the columns, and the JSON one the JSON. */
  paths: string;
}

export async function typedBench(dir: string, events: number, say: (s: string) => void, batch = 20_000): Promise<TypedBench> {
  // The baseline: a second store that gets the same batches and never has typed columns.
  const plain = new DuckdbStore({ file: path.join(dir, 'typed-baseline.duckdb'), queryTimeoutMs: 120_000 });
  const store = new DuckdbStore({ file: path.join(dir, 'typed.duckdb'), queryTimeoutMs: 120_000 });
  await plain.connect();
  await store.connect();
  try {
    /**
     * Commits [from, to) to both stores, batch by batch, the two commits of a batch back to
     * back in alternating order, so that the shared machine's changing load and the tables'
     * sizes are the same for both; returns each store's rate (ev/s).
     */
    const load = async (from: number, to: number): Promise<[number, number]> => {
      const ms = [0, 0];
      const stores = [plain, store];
      for (let i = from, n = 0; i < to; i += batch, n++) {
        const rs = records(i, Math.min(batch, to - i));
        for (const k of n % 2 ? [1, 0] : [0, 1]) {
          const t = performance.now();
          await stores[k]!.commit({ records: rs, partitions: [{ partition: 0, token: 1, upTo: i + rs.length }] });
          ms[k]! += performance.now() - t;
        }
        if (n % Math.max(1, Math.round(1_000_000 / batch)) === 0) say(`typed: loading ${i.toLocaleString('en-US')} / ${events.toLocaleString('en-US')} events through Store.commit, into both stores`);
      }
      return [(to - from) / (ms[0]! / 1000), (to - from) / (ms[1]! / 1000)];
    };
    const half = Math.floor(events / 2 / batch) * batch;
    const [plainBefore, typedBefore] = await load(0, half);
    say(`typed: declaring ${DECLARED.join(', ')} and building their columns by backfill`);
    await store.typedColumns.declare('bench', 'checkout', DECLARED);
    const t = performance.now();
    const b = await store.backfills.start({ view: typedBackfillName('checkout'), tenant: 'bench', from: null, to: null, rate: 0 });
    for (let s = b; s.status === 'running'; ) s = await store.backfills.step(b.id, 2_000_000);
    const buildRate = half / ((performance.now() - t) / 1000);
    const [loadPlain, loadTyped] = await load(half, events);
    await plain.close();

    const spec = (body: Record<string, unknown>): QuerySpec =>
      parseQuery({ event: 'checkout', from: new Date(T0).toISOString(), to: new Date(T0 + DAY).toISOString(), interval: null, ...body }, 'bench', Date.now(), { maxBuckets: 100_000, maxRows: 1_000_000 });
    const declared = spec({ group_by: ['properties.region'], measures: ['count', 'sum:amount'] });
    const undeclared = spec({ group_by: ['properties.plan'], measures: ['count', 'sum:coupon'] });
    say('typed: group-by with count and sum, from typed columns and from JSON');
    const [a, j, u] = [await store.query(declared, 1_000_000), await store.query(declared, 1_000_000, undefined, { typedColumns: false }), await store.query(undeclared, 1_000_000)];
    if (JSON.stringify(a.rows.map((r) => r.slice(0, 2))) !== JSON.stringify(j.rows.map((r) => r.slice(0, 2)))) throw new Error('typed columns and JSON answered differently');
    const declaredTyped = await timed(9, () => store.query(declared, 1_000_000));
    const declaredJson = await timed(9, () => store.query(declared, 1_000_000, undefined, { typedColumns: false }));
    const undeclaredJson = await timed(9, () => store.query(undeclared, 1_000_000));
    // Those ten raw reads promoted `plan` and `coupon` (PROMOTION): declared and built as the
    // store thread's periodic declaration does, then read from their columns.
    const promoted = (await store.typedColumns.promoted('bench', Date.now())).get('checkout') ?? [];
    say(`typed: ${promoted.join(', ') || 'nothing'} promoted after ten raw queries; building their columns`);
    await store.typedColumns.declare('bench', 'checkout', [...DECLARED, ...promoted]);
    const rebuild = await store.backfills.start({ view: typedBackfillName('checkout'), tenant: 'bench', from: null, to: null, rate: 0 });
    for (let s = rebuild; s.status === 'running'; ) s = await store.backfills.step(rebuild.id, 2_000_000);
    const p = await store.query(undeclared, 1_000_000);
    if (!p.typed || JSON.stringify(p.rows) !== JSON.stringify(u.rows)) throw new Error(`the promoted columns ${p.typed ? 'answered differently from the JSON' : 'were not read'}`);
    const undeclaredPromoted = await timed(9, () => store.query(undeclared, 1_000_000));
    const paths = `declared: ${a.typed ? 'typed columns' : 'JSON'} / ${j.typed ? 'typed columns' : 'JSON'}; undeclared: ${u.typed ? 'typed columns' : 'JSON'}, then ${p.typed ? 'typed columns' : 'JSON'}`;
    return { events, batch, loadPlain, loadTyped, aa: typedBefore / plainBefore, buildRate, declaredJson, declaredTyped, undeclaredJson, undeclaredPromoted, promoted, paths };
  } finally {
    await plain.close();
    await store.close();
  }
}
