import { ROOT_CONTEXT, type Context, type Tracer } from '@opentelemetry/api';
import { backoffDelay } from '../core/backoff.js';
import { systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import { inSpan, linksOf, traceIdOf } from '../obs/tracing.js';
import { coerceError, isFenced, isNonRetryable } from '../core/errors.js';
import type { DeadLetter, DeadLetterReason, LogRecord } from '../core/types.js';
import type { DeadLetterStore } from '../ports/dead-letters.js';
import type { Lease, Log } from '../ports/log.js';
import type { CommitBatch, CommitResult, Store } from '../ports/store.js';
import { holdPaused, judge, processBatch, type Stage } from './pipeline.js';
import { redactValues } from '../core/redact.js';

/**
 * A consumer: one member of a consumer group. It holds leases on its fair share of the
 * partitions and runs the batch loop over them:
 *
 *   read (attempts persisted) → the pipeline's stages (pipeline.ts: dead-letter poison and
 *   faulty records, hold a paused tenant's, enrich the rest) → commit to the sink (fenced,
 *   idempotent by position) → ack. A suspect delivery (repeating an unacked one) is processed alone.
 *
 * States: running (leases renewed every ttl/3 by a timer independent of the loop, so that a
 * slow commit does not cost the lease) → stopping (the batch in hand finishes, nothing new
 * is read) → stopped (leases released, membership left).
 *
 * Failures: a transient store error retries the same batch in memory with backoff and
 * jitter, forever, and never dead-letters; a row the store refuses (NonRetryableError) is
 * isolated and dead-lettered alone; a lost lease (FencedError) drops that partition.
 */

/**
 * Where a consumer's results go: the store's commit and its applied offsets, and the dead
 * letters. The live group writes to the store and the catalog (`storeSinks`); a shadow group
 * can write to tables of its own.
 */
export interface ConsumerSinks {
  /** See Store.commit: idempotent by position, fenced by the lease's token. */
  commit(batch: CommitBatch): Promise<CommitResult>;
  /** See Store.appliedOffsets: the last offset applied per partition. */
  appliedOffsets(): Promise<Map<number, number>>;
  /** Writes dead letters (`open`) or held records (`held`); see DeadLetterStore.record. */
  deadLetters: Pick<DeadLetterStore, 'record'>;
}

/** The sinks of the live consumer group: the store and the catalog's dead letters. */
export function storeSinks(store: Pick<Store, 'commit' | 'appliedOffsets'>, deadLetters: Pick<DeadLetterStore, 'record'>): ConsumerSinks {
  return { commit: (b) => store.commit(b), appliedOffsets: () => store.appliedOffsets(), deadLetters };
}

export interface ConsumerOptions {
  /** The consumer group: its members share the partitions, and it keeps its own offsets. */
  group: string;
  owner: string;
  partitions: number;
  readBatch: number;
  commitBatch: number;
  maxAttempts: number;
  leaseTtlMs: number;
  /** The idle wait after a round that found nothing (ms); doubled after each further empty round, up to `idleMaxMs`. */
  pollMs: number;
  /**
   * The longest idle wait (ms; default: `pollMs`, no growth). An idle consumer on a remote log
   * (NATS) asks each held partition for records at every round; growing the wait while rounds
   * stay empty bounds that cost, and a round that finds records sets it back to `pollMs`. On the
   * embedded log new records wake the consumer at once (`notify`), so only a remote log's first
   * record after a quiet spell waits up to this long.
   */
  idleMaxMs?: number;
  onEvent?: (e: ConsumerEvent) => void;
  /** Traces each batch (linked to its records' ingest spans) and its store commits. */
  tracer?: Tracer;
  /** Time for lease heartbeats, idle polls and backoff (the system clock by default). */
  clock?: Clock;
  /** The pipeline run over each batch; without it, only poison and faulty records are dead-lettered. */
  stages?: readonly Stage[];
  /**
   * Per tenant, the records of a batch that passed and the pipeline's own failures (poison,
   * enrich_failed, invalid_row…): the dead-letter breaker's input, before anything of the
   * batch is written. May pause the tenant: answers the pause's reason when this batch did
   * (its records of that tenant are then held, not dead-lettered or stored: see `process`).
   */
  onOutcome?: (tenant: string, ok: number, failed: number) => Promise<string | null | void>;
  /** Processing starts when this settles, after the first leases are taken (default: at once); stop() does not wait for it. */
  begin?: Promise<void>;
}

export type ConsumerEvent =
  | { kind: 'lease'; partition: number; held: boolean }
  | { kind: 'committed'; records: number; stored: number; skipped: number; storedByTenant: Map<string, number>; seconds: number }
  | { kind: 'dead-lettered'; tenant: string; reason: DeadLetterReason; held: boolean }
  | { kind: 'busy'; seconds: number }
  | { kind: 'retry'; error: string; delayMs: number; traceId?: string };

export class Consumer {
  private readonly leases = new Map<number, Lease>();
  private stopping = false;
  private loop: Promise<void> | null = null;
  private heartbeat: TimerHandle | null = null;
  private wake: (() => void) | null = null;
  private readonly abort = new AbortController();
  /** The span context of the batch in hand (one batch at a time per consumer). */
  private traceContext: Context = ROOT_CONTEXT;

  constructor(
    private readonly log: Log,
    private readonly sinks: ConsumerSinks,
    private readonly opts: ConsumerOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  private readonly clock: Clock;

  start(): void {
    if (this.loop) return;
    // Renewed every ttl/3, on a timer of its own: a slow commit does not cost the lease.
    const every = Math.max(200, Math.floor(this.opts.leaseTtlMs / 3));
    // One maintenance run at a time (two would both take the partitions the other has taken
    // and not yet recorded): the next is due `every` ms after the last one ended.
    const beat = (): void => {
      this.heartbeat = this.clock.setTimeout(() => void this.maintain().then(() => !this.stopping && beat()), every);
    };
    this.firstLeases = this.maintain();
    void this.firstLeases.then(() => !this.stopping && beat());
    const stopped = new Promise<void>((resolve) => this.abort.signal.addEventListener('abort', () => resolve(), { once: true }));
    const begun = this.opts.begin ? Promise.race([this.opts.begin, stopped]) : undefined;
    this.loop = this.firstLeases.then(() => begun).then(() => this.run());
  }

  /** Settles when the first round of lease taking after start() is over (never rejects). */
  firstLeases: Promise<void> = Promise.resolve();

  /** The maintenance run in progress or the last one (never rejects): stop() waits for it. */
  private maintenance: Promise<void> = Promise.resolve();

  private maintain(): Promise<void> {
    this.maintenance = this.maintainLeases();
    return this.maintenance;
  }

  /** New records may be there: skip the rest of the idle wait. */
  notify(): void {
    this.wake?.();
  }

  heldPartitions(): number[] {
    return [...this.leases.keys()].sort((a, b) => a - b);
  }

  /** Finishes the batch in hand, releases the leases. Must not throw. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort(new Error('consumer stopping'));
    this.wake?.();
    if (this.heartbeat) this.clock.clearTimeout(this.heartbeat);
    // A run in progress records what it takes before the leases are released below.
    await this.maintenance;
    try {
      await this.loop;
    } catch {
      // The loop reports its own errors; stopping must go on.
    }
    for (const lease of this.leases.values()) await this.log.release(lease);
    this.leases.clear();
    await this.log.leave(this.opts.group, this.opts.owner);
  }

  /**
   * Renews held leases, drops lost ones, and moves towards the fair share. Renewals go out
   * together, and so do acquisitions (as many at a time as the share lacks): on a loaded
   * process each await waits its turn behind the batch in hand, so a round of one call after
   * another grows with the partitions it touches, and a dead member's partitions wait for it.
   */
  private async maintainLeases(): Promise<void> {
    if (this.stopping) return;
    const { group, owner, partitions, leaseTtlMs } = this.opts;
    try {
      const members = Math.max(1, await this.log.join(group, owner, leaseTtlMs));
      const share = Math.ceil(partitions / members);
      const held = [...this.leases];
      const renewed = await Promise.all(held.map(([, lease]) => this.log.renew(lease, leaseTtlMs)));
      for (const [i, [p]] of held.entries()) if (!renewed[i]) this.drop(p);
      // Over the share (a member joined): give the highest partitions back.
      for (const p of this.heldPartitions().reverse()) {
        if (this.leases.size <= share) break;
        const lease = this.leases.get(p)!;
        this.drop(p);
        await this.log.release(lease);
      }
      // Start at an owner-dependent partition so that members do not all race for partition 0.
      const start = hashOwner(owner) % partitions;
      const candidates = Array.from({ length: partitions }, (_, i) => (start + i) % partitions).filter((p) => !this.leases.has(p));
      // Read once, when a first lease is taken: applied offsets only grow, so an earlier reading is safe to ack.
      let applied: Promise<Map<number, number>> | null = null;
      while (candidates.length > 0 && this.leases.size < share && !this.stopping) {
        const tried = candidates.splice(0, share - this.leases.size);
        const results = await Promise.allSettled(tried.map((p) => this.log.acquire(group, p, owner, leaseTtlMs)));
        const taken = tried.flatMap((partition, i) => {
          const r = results[i]!;
          return r.status === 'fulfilled' && r.value ? [{ partition, lease: r.value }] : [];
        });
        if (taken.length > 0) {
          // Records the store already applied were processed: ack them now, so that a
          // predecessor's crash between commit and ack does not make them look suspect (if
          // this fails, the first read finds them suspect and acks them: see unapplied()).
          const upTo = await (applied ??= this.sinks.appliedOffsets().catch(() => new Map<number, number>()));
          await Promise.allSettled(
            taken.map(async ({ partition, lease }) => {
              const offset = upTo.get(partition);
              if (offset) await this.log.ack(lease, offset);
            }),
          );
          for (const { partition, lease } of taken) {
            this.leases.set(partition, lease);
            this.opts.onEvent?.({ kind: 'lease', partition, held: true });
          }
        }
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      }
    } catch (e: unknown) {
      this.opts.onEvent?.({ kind: 'retry', error: `lease maintenance: ${coerceError(e).message}`, delayMs: 0 });
    }
  }

  private drop(p: number): void {
    if (this.leases.delete(p)) this.opts.onEvent?.({ kind: 'lease', partition: p, held: false });
  }

  private async run(): Promise<void> {
    let emptyRounds = 0;
    while (!this.stopping) {
      let worked = false;
      let failure: string | null = null;
      try {
        worked = await this.round();
      } catch (e: unknown) {
        failure = coerceError(e).message;
      }
      if (worked) {
        emptyRounds = 0;
        continue;
      }
      const wait = idleWaitMs(this.opts.pollMs, this.opts.idleMaxMs ?? this.opts.pollMs, emptyRounds++);
      if (failure !== null) this.opts.onEvent?.({ kind: 'retry', error: failure, delayMs: wait });
      if (!this.stopping) await this.idle(wait);
    }
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const clock = this.clock;
      const t = clock.setTimeout(done, ms);
      function done(): void {
        clock.clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  /** One read-commit-ack round over the held partitions. Returns whether it found records. */
  private async round(): Promise<boolean> {
    const batch: { lease: Lease; records: LogRecord[] }[] = [];
    let total = 0;
    for (const lease of [...this.leases.values()]) {
      if (total >= this.opts.commitBatch || this.stopping) break;
      let records: LogRecord[];
      try {
        records = await this.log.read(lease, Math.min(this.opts.readBatch, this.opts.commitBatch - total));
      } catch (e: unknown) {
        if (isFenced(e)) {
          this.drop(lease.partition);
          continue;
        }
        throw e;
      }
      // A redelivery whose commit went through and whose ack was lost: those records are done.
      if (records.length > 0 && records[0]!.suspect) records = await this.unapplied(lease, records);
      if (records.length > 0) {
        batch.push({ lease, records });
        total += records.length;
        // A suspect delivery is processed alone, after the rest: if it crashes the process,
        // no other partition's delivery is in flight to be blamed with it.
        if (records[0]!.suspect) break;
      }
    }
    if (batch.length === 0) return false;
    const last = batch[batch.length - 1]!;
    if (batch.length > 1 && last.records[0]!.suspect) {
      await this.runBatch(batch.slice(0, -1));
      await this.runBatch([last]);
    } else await this.runBatch(batch);
    return true;
  }

  /**
   * The records of a delivery that the store has not applied yet. The others were committed
   * (stored, skipped as duplicates or dead-lettered) by this consumer or a predecessor whose
   * ack was lost: they are acked again and never triaged again, so that attempts counted by
   * lost acks do not dead-letter an event that is already stored.
   */
  private async unapplied(lease: Lease, records: LogRecord[]): Promise<LogRecord[]> {
    const applied = (await this.retrying(() => this.sinks.appliedOffsets())).get(lease.partition) ?? 0;
    if (records[0]!.offset > applied) return records;
    await this.log.ack(lease, Math.min(applied, records[records.length - 1]!.offset));
    return records.filter((r) => r.offset > applied);
  }

  private async runBatch(batch: { lease: Lease; records: LogRecord[] }[]): Promise<void> {
    const started = performance.now();
    await inSpan(
      this.opts.tracer,
      'worker.batch',
      {
        links: linksOf(batch.flatMap(({ records }) => records)),
        attributes: { 'sluice.records': batch.reduce((n, b) => n + b.records.length, 0), 'sluice.partitions': batch.map((b) => b.lease.partition) },
      },
      ROOT_CONTEXT,
      async (ctx) => {
        this.traceContext = ctx;
        try {
          await this.process(batch);
        } finally {
          this.traceContext = ROOT_CONTEXT;
        }
      },
    );
    this.opts.onEvent?.({ kind: 'busy', seconds: (performance.now() - started) / 1000 });
  }

  private async process(batch: { lease: Lease; records: LogRecord[] }[]): Promise<void> {
    const all = batch.flatMap(({ records }) => records);
    const stages = this.opts.stages ?? [judge(this.opts.maxAttempts)];
    const processed = await this.retrying(() => processBatch(all, stages, { signal: this.abort.signal }));
    // The breaker judges the batch before anything of it is written: a batch that trips it
    // holds that tenant's records, as if the pause had come before it (a crash after the
    // pause: the redelivered batch meets the \`hold\` stage). So a first batch of failures
    // larger than breaker.minEvents is held whole, not dead-lettered whole.
    const paused = new Map<string, string>();
    for (const [tenant, { ok, failed }] of processed.outcomes) {
      const reason = await this.retrying(async () => (await this.opts.onOutcome?.(tenant, ok, failed)) ?? null);
      if (reason) paused.set(tenant, reason);
    }
    const { live, dead, held, dropped } = paused.size === 0 ? processed : holdPaused(processed, paused, all);
    if (dead.length > 0) await this.deadLetter(dead);
    if (held.length > 0) await this.deadLetter(held, 'held');
    if (dropped.length > 0) await this.deadLetter(dropped, 'discarded');
    let parts = batch.map(({ lease, records }) => ({ lease, upTo: records[records.length - 1]!.offset }));
    let records = live;
    for (;;) {
      try {
        await this.commit({ records, partitions: parts.map(({ lease, upTo }) => ({ partition: lease.partition, token: lease.token, upTo })) });
        break;
      } catch (e: unknown) {
        if (isFenced(e)) {
          // A lease was taken over. The log tells which: renewing a lost lease fails.
          const held: typeof parts = [];
          for (const part of parts) {
            if (this.leases.get(part.lease.partition) === part.lease && (await this.log.renew(part.lease, this.opts.leaseTtlMs))) held.push(part);
            else this.drop(part.lease.partition);
          }
          // The store refused a lease the log still grants: give them all up rather than loop.
          if (held.length === parts.length) for (const part of parts) this.drop(part.lease.partition);
          if (held.length === 0 || held.length === parts.length) return;
          parts = held;
          const keep = new Set(parts.map(({ lease }) => lease.partition));
          records = records.filter((r) => keep.has(r.partition));
          continue;
        }
        if (isNonRetryable(e)) {
          await this.isolate(records, parts, coerceError(e).message);
          break;
        }
        throw e;
      }
    }
    // Ack only after the store committed (invariant 3). A lost lease makes ack a no-op.
    for (const { lease, upTo } of parts) await this.log.ack(lease, upTo);
  }

  /** Commits record by record to find the rows the store refuses, and dead-letters those. */
  private async isolate(records: LogRecord[], parts: { lease: Lease; upTo: number }[], firstError: string): Promise<void> {
    const tokens = new Map(parts.map(({ lease }) => [lease.partition, lease.token]));
    for (const r of records) {
      const part = [{ partition: r.partition, token: tokens.get(r.partition)!, upTo: r.offset }];
      try {
        await this.commit({ records: [r], partitions: part });
      } catch (e: unknown) {
        if (!isNonRetryable(e)) throw e;
        // Named by its key, never by its contents (the engine's message may quote a value).
        const why = redactValues(coerceError(e).message || firstError);
        await this.deadLetter([{ record: r, reason: 'invalid_row', message: `the store refused the row of "${r.idempotencyKey}": ${why}` }]);
        await this.opts.onOutcome?.(r.tenant, 0, 1);
        await this.commit({ records: [], partitions: part });
      }
    }
    for (const { lease, upTo } of parts) {
      await this.commit({ records: [], partitions: [{ partition: lease.partition, token: lease.token, upTo }] });
    }
  }

  /** A store commit, retried while the failure is transient, and reported. */
  private async commit(batch: CommitBatch): Promise<CommitResult> {
    const started = performance.now();
    const result = await inSpan(
      this.opts.tracer,
      'store.commit',
      { attributes: { 'sluice.records': batch.records.length } },
      this.traceContext,
      () => this.retrying(() => this.sinks.commit(batch)),
      (r) => ({ 'sluice.stored': r.stored, 'sluice.skipped': r.skipped }),
    );
    this.opts.onEvent?.({
      kind: 'committed',
      records: batch.records.length,
      stored: result.stored,
      skipped: result.skipped,
      storedByTenant: result.storedByTenant,
      seconds: (performance.now() - started) / 1000,
    });
    return result;
  }

  private async deadLetter(entries: DeadLetter[], status: 'open' | 'held' | 'discarded' = 'open'): Promise<void> {
    await this.retrying(() => this.sinks.deadLetters.record(entries, status));
    for (const { record, reason } of entries) this.opts.onEvent?.({ kind: 'dead-lettered', tenant: record.tenant, reason, held: status === 'held' });
  }

  /** Retries transient failures with backoff and jitter until they pass or the consumer stops. */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e: unknown) {
        if (isFenced(e) || isNonRetryable(e) || this.stopping) throw e;
        const delayMs = backoffDelay(attempt, 50, 5_000);
        this.opts.onEvent?.({ kind: 'retry', error: coerceError(e).message, delayMs, traceId: traceIdOf(this.traceContext) });
        await this.clock.sleep(delayMs, this.abort.signal).catch(() => undefined);
      }
    }
  }
}

/**
 * The idle wait after the `emptyRounds`+1-th empty round in a row (ms): `pollMs`, doubled after
 * each further one, at most `maxMs` (never below `pollMs`). A wake-up (`notify`) ends any wait.
 */
export function idleWaitMs(pollMs: number, maxMs: number, emptyRounds: number): number {
  return Math.max(pollMs, Math.min(maxMs, pollMs * 2 ** Math.min(emptyRounds, 20)));
}

function hashOwner(owner: string): number {
  let h = 0;
  for (let i = 0; i < owner.length; i++) h = (Math.imul(h, 31) + owner.charCodeAt(i)) >>> 0;
  return h;
}
