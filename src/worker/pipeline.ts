import type { DeadLetter, LogRecord } from '../core/types.js';
import { enrich, type EnrichOptions } from './enrich.js';

/**
 * The processing pipeline as a value: an ordered list of stages that a worker runs over each
 * batch between the read and the store commit. Each stage takes the records still live and
 * sorts them into
 *
 * - live: to go on to the next stage (possibly changed: enriched, transformed);
 * - dead: to be dead-lettered, with the reason (poison, a fault judged at ingest, a stage
 *   that failed on this record);
 * - held: kept aside while the tenant is paused by the dead-letter breaker (replayed on
 *   resume).
 *
 * `processBatch` has no effects of its own: it returns what to do (write dead letters, hold,
 * commit, feed the breaker) and the consumer does it. So a second consumer group can run a
 * candidate pipeline over the same records into another sink (shadow mode) and its results
 * can be compared with the live ones.
 */
export interface Stage {
  /** A verb: `judge`, `hold`, `enrich`, `transform`. */
  readonly name: string;
  /**
   * Sorts `records` (all live so far, in log order). May throw a transient error (the
   * consumer retries the whole batch with backoff) or a NonRetryableError (the consumer
   * isolates and dead-letters the records one by one).
   */
  run(records: readonly LogRecord[], ctx: StageContext): Promise<StageResult> | StageResult;
}

export interface StageContext {
  /** Aborted when the worker stops. */
  signal: AbortSignal;
}

export interface StageResult {
  live: LogRecord[];
  dead: DeadLetter[];
  held?: DeadLetter[];
  /** Dropped on purpose (a transform's `drop` step): recorded as discarded dead letters, so that they are counted. */
  dropped?: DeadLetter[];
}

/**
 * What a batch comes to. `outcomes`: per tenant, records that passed and pipeline failures (the
 * breaker's input); a tenant with held records (paused) has none.
 */
export interface Processed {
  live: LogRecord[];
  dead: DeadLetter[];
  held: DeadLetter[];
  dropped: DeadLetter[];
  outcomes: Map<string, { ok: number; failed: number }>;
}

/**
 * Dead-letter reasons that are the pipeline's own failures, not the producer's: they feed the
 * dead-letter breaker (a producer's schema violations must not hold its good events).
 */
const PIPELINE_FAULTS: ReadonlySet<string> = new Set(['poison', 'enrich_failed', 'invalid_row', 'transform_failed']);

/** Runs `stages` in order over `records`. No effects: see `Processed`. */
export async function processBatch(records: readonly LogRecord[], stages: readonly Stage[], ctx: StageContext): Promise<Processed> {
  let live: LogRecord[] = [...records];
  const dead: DeadLetter[] = [];
  const held: DeadLetter[] = [];
  const dropped: DeadLetter[] = [];
  for (const stage of stages) {
    if (live.length === 0) break;
    const r = await stage.run(live, ctx);
    live = r.live;
    dead.push(...r.dead);
    if (r.held) held.push(...r.held);
    if (r.dropped) dropped.push(...r.dropped);
  }
  const outcomes = new Map<string, { ok: number; failed: number }>();
  const at = (tenant: string) => {
    let o = outcomes.get(tenant);
    if (!o) outcomes.set(tenant, (o = { ok: 0, failed: 0 }));
    return o;
  };
  // A paused tenant's failures (poison from before the pause) do not weigh on the breaker's
  // window that starts at its resume.
  const paused = new Set(held.map((d) => d.record.tenant));
  for (const d of dead) if (PIPELINE_FAULTS.has(d.reason) && !paused.has(d.record.tenant)) at(d.record.tenant).failed++;
  for (const r of live) at(r.tenant).ok++;
  for (const d of dropped) at(d.record.tenant).ok++;
  return { live, dead, held, dropped, outcomes };
}

/**
 * A batch of which the breaker paused the tenants of `paused` (tenant → reason): their records
 * past the `hold` stage (passed, dropped by a transform, or failed by the pipeline after it:
 * enrich, transforms) are held instead, as `originals` (the batch as read) has them, as the \`hold\` stage would have held them had the pause
 * come first. Records judged before it (producer faults, poison) keep their dead letters.
 */
export function holdPaused(p: Processed, paused: ReadonlyMap<string, string>, originals: readonly LogRecord[]): Processed {
  const held = [...p.held];
  // What is held is what the log delivered, not what enrich and the transforms made of it:
  // the resume replays it through the whole pipeline again (a step applied twice would double
  // an amount, hash a hash).
  const byPosition = new Map(originals.map((r) => [`${r.partition}:${r.offset}`, r]));
  const hold = (r: LogRecord) => {
    const record = byPosition.get(`${r.partition}:${r.offset}`) ?? r;
    held.push({ record, reason: 'held', message: `held while the tenant is paused: ${paused.get(record.tenant)!}` });
  };
  const live = p.live.filter((r) => (paused.has(r.tenant) ? (hold(r), false) : true));
  const dropped = p.dropped.filter((d) => (paused.has(d.record.tenant) ? (hold(d.record), false) : true));
  const dead = p.dead.filter((d) => (paused.has(d.record.tenant) && HELD_WHEN_PAUSED.has(d.reason) ? (hold(d.record), false) : true));
  return { live, dead, held, dropped, outcomes: p.outcomes };
}

/** Pipeline failures that arise after the `hold` stage: a paused tenant's records never reach them. */
const HELD_WHEN_PAUSED: ReadonlySet<string> = new Set(['enrich_failed', 'transform_failed']);

/** The dead letter of a record delivered `maxAttempts` times without completing. */
export function poisonLetter(r: LogRecord): DeadLetter {
  return { record: r, reason: 'poison', message: `delivered ${r.attempt} times without completing; the consumer crashed or timed out on it each time` };
}

/**
 * `judge`: dead-letters records delivered `maxAttempts` times (poison) and records judged
 * faulty at ingest (schema violation, unknown type, too late: the log carries them so that
 * their dead letter is written exactly once, here).
 */
export function judge(maxAttempts: number): Stage {
  return {
    name: 'judge',
    run(records) {
      const live: LogRecord[] = [];
      const dead: DeadLetter[] = [];
      for (const r of records) {
        if (r.attempt >= maxAttempts) dead.push(poisonLetter(r));
        else if (r.fault) {
          const { reason, message, path, schemaVersion } = r.fault;
          dead.push({ record: r, reason, message, path, ...(schemaVersion === undefined ? {} : { schemaVersion }) });
        } else live.push(r);
      }
      return { live, dead };
    },
  };
}

/**
 * `hold`: sets aside the records of tenants paused by the dead-letter breaker. `pausedWhy`
 * answers the pause reason of a tenant, or null when it is not paused.
 */
export function hold(pausedWhy: (tenant: string) => Promise<string | null>): Stage {
  return {
    name: 'hold',
    async run(records) {
      const why = new Map<string, string | null>();
      for (const tenant of new Set(records.map((r) => r.tenant))) why.set(tenant, await pausedWhy(tenant));
      const live: LogRecord[] = [];
      const held: DeadLetter[] = [];
      for (const r of records) {
        const reason = why.get(r.tenant);
        if (reason == null) live.push(r);
        else held.push({ record: r, reason: 'held', message: `held while the tenant is paused: ${reason}` });
      }
      return { live, dead: [], held };
    },
  };
}

/**
 * `enrich`: the built-in enrichers and the configured plugins (see enrich.ts). `opts` may be
 * a function, asked once per batch (the operator-level enrichment document can change them
 * while the workers run).
 */
export function enrichStage(opts: EnrichOptions | (() => Promise<EnrichOptions>)): Stage {
  return {
    name: 'enrich',
    async run(records, ctx) {
      const { records: live, failed } = await enrich(records, typeof opts === 'function' ? await opts() : opts, ctx.signal);
      return { live, dead: failed.map((f) => ({ record: f.record, reason: 'enrich_failed' as const, message: f.message })) };
    },
  };
}
