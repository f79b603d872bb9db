import { systemClock, type Clock } from '../core/clock.js';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Config } from '../config/schema.js';
import { SluiceError } from '../core/errors.js';
import type { TenantQuota } from '../ports/catalog.js';
import type { AppendOutcome } from '../core/types.js';
import type { PartitionPosition } from '../ports/log.js';
import { CommittedBacklog } from './committed-backlog.js';

/**
 * Admission control at the door, so that one tenant's spike meets its own limits and a
 * saturated process sheds load instead of growing without bound.
 *
 * Per tenant (429 + Retry-After, other tenants unaffected):
 * - two token buckets, events/s and bytes/s, each holding one second of its rate. A request
 *   is admitted while the bucket is not in debt and takes what it needs, going into debt if
 *   it is larger than the bucket (a batch bigger than one second's quota is still possible);
 *   `Retry-After` is the time the debt takes to refill.
 * - a backlog cap: events accepted into the log and not yet processed by a worker. Counted in
 *   this process (accepted here, processed as the workers report), starting from the backlog
 *   the log holds at start. A process on a shared log (NATS), whose events may be processed
 *   by workers of other processes (`processedElsewhere`), releases what it appended as the
 *   worker group's committed offsets pass it instead (committed-backlog.ts). `Retry-After` is
 *   1 s while the tenant's events are being processed, longer (5-60 s) once none has been for
 *   `STALLED_AFTER_MS`, with the message saying to check the workers.
 *
 * Global (503 + Retry-After): the log's backlog over `logBacklog` events, or the event loop
 * lagging more than `eventLoopLagMs` (the process is past what it can serve).
 */
export interface QuotaLimits {
  /** Per-tenant defaults, when a tenant's settings do not say; 0 = unlimited. */
  defaults: Required<TenantQuota>;
  logBacklog: number;
  eventLoopLagMs: number;
}

/**
 * A tenant at its backlog cap whose events have not moved for this long (ms) is told its
 * workers look stalled, with a longer Retry-After. Workers commit batches well within a
 * second when they run; 10 s is 20 refreshes of the log's positions.
 */
export const STALLED_AFTER_MS = 10_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class Quotas {
  private readonly events = new Map<string, Bucket>();
  private readonly bytes = new Map<string, Bucket>();
  private readonly backlog = new Map<string, number>();
  /** Per tenant with a backlog: when it last moved (events processed, or the first accepted). */
  private readonly progressAt = new Map<string, number>();
  private readonly loop: IntervalHistogram;
  private loopLagMs = 0;
  private readonly timer: NodeJS.Timeout;
  private logBacklog = 0;

  /** The limits of a configuration: `quotas.*` per tenant, `limits.logBacklog` and `limits.eventLoopLagMs`. */
  static fromConfig(config: Readonly<Config>, options: { processedElsewhere?: boolean } = {}): Quotas {
    return new Quotas({ defaults: config.quotas, logBacklog: config.limits.logBacklog, eventLoopLagMs: config.limits.eventLoopLagMs }, systemClock, options);
  }

  /** Set when workers of other processes may process this process's events (see committed-backlog.ts). */
  private readonly byOffsets: CommittedBacklog | null;

  constructor(
    private readonly limits: QuotaLimits,
    /** The token buckets' clock (refills). */
    private readonly clock: Pick<Clock, 'now'> = systemClock,
    /**
     * `processedElsewhere`: what this process appended is released by `committed` (the worker
     * group's offsets), not by `processed` (which its caller then does not call).
     */
    options: { processedElsewhere?: boolean } = {},
  ) {
    this.byOffsets = options.processedElsewhere ? new CommittedBacklog() : null;
    this.loop = monitorEventLoopDelay({ resolution: 20 });
    this.loop.enable();
    // The worst delay of the last second, then a fresh window.
    this.timer = setInterval(() => {
      this.loopLagMs = this.loop.max / 1e6;
      this.loop.reset();
    }, 1000);
    this.timer.unref();
  }

  /** The limits in force for a tenant: its own settings over the defaults. */
  effective(q: TenantQuota | undefined): Required<TenantQuota> {
    return {
      eventsPerSecond: q?.eventsPerSecond ?? this.limits.defaults.eventsPerSecond,
      bytesPerSecond: q?.bytesPerSecond ?? this.limits.defaults.bytesPerSecond,
      backlog: q?.backlog ?? this.limits.defaults.backlog,
    };
  }

  /** The log's backlog in events (all tenants), as last measured. */
  setLogBacklog(events: number): void {
    this.logBacklog = events;
  }

  /** Throws 503 when the process is saturated. Cheap: call it before reading the body. */
  checkSaturation(): void {
    if (this.logBacklog > this.limits.logBacklog) {
      throw new SluiceError('SLUICE_ERR_OVERLOADED', `the log holds ${this.logBacklog} events not yet processed (cap ${this.limits.logBacklog}); retry later`, {
        field: 'log_backlog',
        retryAfter: 5,
      });
    }
    if (this.limits.eventLoopLagMs > 0 && this.loopLagMs > this.limits.eventLoopLagMs) {
      throw new SluiceError('SLUICE_ERR_OVERLOADED', `the server is saturated (event loop lag ${Math.round(this.loopLagMs)} ms); retry later`, { field: 'event_loop', retryAfter: 1 });
    }
  }

  /**
   * Before the body is decoded: throws 429 when the tenant is over its backlog cap or in debt
   * on either bucket (so a refused request costs no JSON parsing), else takes `bytes`.
   */
  admit(tenant: string, quota: TenantQuota | undefined, bytes: number): void {
    const q = this.effective(quota);
    const backlog = this.backlog.get(tenant) ?? 0;
    const now = this.clock.now();
    if (q.backlog > 0 && backlog >= q.backlog) throw this.backlogFull(tenant, backlog, q.backlog, now);
    const e = q.eventsPerSecond > 0 ? this.refill(this.events, tenant, q.eventsPerSecond, now) : null;
    const b = q.bytesPerSecond > 0 ? this.refill(this.bytes, tenant, q.bytesPerSecond, now) : null;
    if (e && e.tokens < 0) throw this.over(tenant, 'events_per_second', q.eventsPerSecond, e);
    if (b && b.tokens < 0) throw this.over(tenant, 'bytes_per_second', q.bytesPerSecond, b);
    if (b) b.tokens -= bytes;
  }

  /**
   * After the body is decoded: takes the request's events from the tenant's bucket (possibly
   * into debt), and `bytes` the admission could not charge (a body without Content-Length).
   */
  take(tenant: string, quota: TenantQuota | undefined, events: number, bytes = 0): void {
    const q = this.effective(quota);
    const now = this.clock.now();
    if (q.eventsPerSecond > 0) this.refill(this.events, tenant, q.eventsPerSecond, now).tokens -= events;
    if (q.bytesPerSecond > 0 && bytes > 0) this.refill(this.bytes, tenant, q.bytesPerSecond, now).tokens -= bytes;
  }

  /**
   * The bytes/s meter of one admitted request, for its body as it is decoded: told each piece
   * of decoded bytes, it takes from the tenant's bucket what goes beyond the `prepaid` bytes
   * admission took (the size on the wire). One request may take the bucket into debt by its
   * own bytes (as `admit` allows); when other requests' bytes put the bucket in debt while
   * this one decodes, it throws the 429 and the decoding stops. So N gzip bodies decoded at
   * once pass about one second's quota plus one body, not N bodies each inflated to
   * `limits.decompressedBytes`. Undefined when the tenant has no bytes/s quota.
   */
  meter(tenant: string, quota: TenantQuota | undefined, prepaid: number): ((bytes: number) => void) | undefined {
    const rate = this.effective(quota).bytesPerSecond;
    // No bytes/s quota: nothing to count (and a gzip body is inflated in one call).
    if (rate <= 0) return undefined;
    let decoded = 0;
    let charged = prepaid;
    return (bytes) => {
      decoded += bytes;
      if (decoded <= charged) return;
      const bucket = this.refill(this.bytes, tenant, rate, this.clock.now());
      bucket.tokens -= decoded - charged;
      charged = decoded;
      if (bucket.tokens + charged < 0) throw this.over(tenant, 'bytes_per_second', rate, bucket);
    };
  }

  /**
   * 429 for a tenant at its backlog cap. While its events are being processed, room opens
   * within a second (Retry-After: 1). When nothing of it has been processed for
   * `STALLED_AFTER_MS`, retrying each second cannot help: Retry-After grows with the stall (up
   * to 60 s) and the message says where to look.
   */
  private backlogFull(tenant: string, backlog: number, cap: number, now: number): SluiceError {
    const stalledMs = now - (this.progressAt.get(tenant) ?? now);
    const waiting = `tenant "${tenant}" has ${backlog} events waiting to be processed (its backlog cap is ${cap})`;
    if (stalledMs < STALLED_AFTER_MS) return new SluiceError('SLUICE_ERR_QUOTA_EXCEEDED', `${waiting}; retry later`, { field: 'backlog', retryAfter: 1 });
    const seconds = Math.round(stalledMs / 1000);
    return new SluiceError(
      'SLUICE_ERR_QUOTA_EXCEEDED',
      `${waiting} and none has been processed for ${seconds} s: check that workers are running (sluice worker, or sluice up) and keeping up (GET /v1/status shows each partition's lag); retry later`,
      { field: 'backlog', retryAfter: Math.min(60, Math.max(5, Math.round(seconds / 6))) },
    );
  }

  private refill(map: Map<string, Bucket>, tenant: string, rate: number, now: number): Bucket {
    let bucket = map.get(tenant);
    if (!bucket) map.set(tenant, (bucket = { tokens: rate, at: now }));
    bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.at) / 1000) * rate);
    bucket.at = now;
    return bucket;
  }

  private over(tenant: string, field: string, rate: number, bucket: Bucket): SluiceError {
    const seconds = Math.max(1, Math.ceil(-bucket.tokens / rate));
    return new SluiceError('SLUICE_ERR_QUOTA_EXCEEDED', `tenant "${tenant}" is over its quota of ${rate} ${field.replace(/_/g, ' ')}; retry after ${seconds} s`, {
      field,
      retryAfter: seconds,
    });
  }

  /** Events of a tenant appended to the log: the outcomes of one durable append. */
  appended(tenant: string, outcomes: readonly AppendOutcome[]): void {
    let n = 0;
    for (const o of outcomes) if (o.status === 'appended') n++;
    this.accepted(tenant, n);
    this.byOffsets?.appended(tenant, outcomes);
  }

  /**
   * The backlog the log held at this process's start, per tenant; `heads` (the log's positions
   * read after that count) are needed only when processed elsewhere: it is released once the
   * worker group has committed up to them.
   */
  inherit(byTenant: ReadonlyMap<string, number>, heads: readonly Pick<PartitionPosition, 'partition' | 'head'>[]): void {
    for (const [tenant, n] of byTenant) this.accepted(tenant, n);
    this.byOffsets?.inherit(byTenant, heads);
  }

  /** Whether this process's backlog is released by the worker group's committed offsets (`processedElsewhere`). */
  get releasedByOffsets(): boolean {
    return this.byOffsets !== null;
  }

  /**
   * The worker group's positions, read now (every refresh of the log's backlog): when the
   * events are processed elsewhere, what this process appended below the committed offsets
   * is released (committed-backlog.ts). Does nothing otherwise.
   */
  committed(positions: readonly Pick<PartitionPosition, 'partition' | 'committed'>[]): void {
    if (this.byOffsets) this.processed(this.byOffsets.committed(positions));
  }

  private accepted(tenant: string, n: number): void {
    if (n <= 0) return;
    const before = this.backlog.get(tenant) ?? 0;
    if (before === 0) this.progressAt.set(tenant, this.clock.now());
    this.backlog.set(tenant, before + n);
  }

  /** Events the workers finished (stored or dead-lettered), per tenant. */
  processed(counts: Iterable<[string, number]>): void {
    const now = this.clock.now();
    for (const [tenant, n] of counts) {
      if (n <= 0) continue;
      const left = (this.backlog.get(tenant) ?? 0) - n;
      this.progressAt.set(tenant, now);
      if (left > 0) this.backlog.set(tenant, left);
      else {
        this.backlog.delete(tenant);
        this.progressAt.delete(tenant);
      }
    }
  }

  /**
   * Replaces the per-tenant backlog counts with the log's own count (events not yet acked).
   * Called once the workers have started: records a crashed process had committed to the
   * store but not acked are acked then without being processed again, so the count taken at
   * start, before that, would keep them for ever.
   */
  resetBacklog(byTenant: Iterable<[string, number]>): void {
    this.backlog.clear();
    this.progressAt.clear();
    const now = this.clock.now();
    for (const [tenant, n] of byTenant) {
      if (n <= 0) continue;
      this.backlog.set(tenant, n);
      this.progressAt.set(tenant, now);
    }
  }

  /** What `/v1/status` shows of a tenant. */
  state(tenant: string, quota: TenantQuota | undefined) {
    const q = this.effective(quota);
    return {
      events_per_second: q.eventsPerSecond || null,
      bytes_per_second: q.bytesPerSecond || null,
      backlog: q.backlog || null,
      current_backlog: this.backlog.get(tenant) ?? 0,
    };
  }

  /** Must not throw. */
  close(): void {
    clearInterval(this.timer);
    this.loop.disable();
  }
}
