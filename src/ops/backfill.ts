import { backoffDelay, sleep } from '../core/backoff.js';
import { coerceError } from '../core/errors.js';
import { redactValues } from '../core/redact.js';
import type { Logger } from '../obs/logger.js';
import type { BackfillSpec, BackfillState } from '../ports/backfill.js';
import type { Store } from '../ports/store.js';

/**
 * Runs backfills in the background, in chunks, next to live processing (in `sluice up`, in
 * the store thread). One chunk runs at a time, taken from the tenants in turn (each tenant's
 * backfills in the order they started), so that one tenant's long or throttled backfill
 * delays another tenant's by a chunk at most, not by its whole length. Throttled: after each
 * chunk the runner waits at least as long as the chunk took, so live commits keep at least
 * half of the store's time; a backfill with a rate also waits until its rate allows its next
 * chunk, while the other tenants' chunks run. Backfills still running when the process
 * stopped are resumed at start, from their cursor.
 */
export class BackfillRunner {
  /** Per tenant, its queued backfills in the order they started; the map's order is the turn. */
  private readonly queues = new Map<string, Job[]>();
  private active: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(
    private readonly store: Store,
    private readonly opts: { logger?: Logger; signal: AbortSignal; chunkEvents?: number },
  ) {}

  async start(spec: BackfillSpec): Promise<BackfillState> {
    const state = await this.store.backfills.start(spec);
    this.opts.logger?.info({ backfill: state.id, view: state.view, tenant: state.tenant, total: state.total }, 'backfill started');
    this.enqueue(state);
    return state;
  }

  /** Picks up the backfills a stopped process left running. */
  async resume(): Promise<void> {
    const queued = new Set([...this.queues.values()].flat().map((j) => j.id));
    for (const s of await this.store.backfills.list()) {
      if (s.status === 'running' && !queued.has(s.id)) {
        this.opts.logger?.info({ backfill: s.id, done: s.done, total: s.total }, 'backfill resumed');
        this.enqueue(s);
      }
    }
  }

  list(tenant: string): Promise<BackfillState[]> {
    return this.store.backfills.list(tenant);
  }

  /** Resolves when every queued backfill has ended (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.active) await this.active;
  }

  private enqueue(s: Pick<BackfillState, 'id' | 'tenant' | 'rate'>): void {
    const maxChunk = Math.max(MIN_CHUNK_EVENTS, Math.min(this.opts.chunkEvents ?? 200_000, s.rate > 0 ? s.rate : Infinity));
    const queue = this.queues.get(s.tenant) ?? [];
    queue.push({ id: s.id, tenant: s.tenant, rate: s.rate, chunk: Math.min(maxChunk, FIRST_CHUNK_EVENTS), maxChunk, failures: 0, nextAt: 0 });
    this.queues.set(s.tenant, queue);
    this.wake?.();
    this.kick();
  }

  /** Starts draining unless a drain runs. One that ends as a backfill is queued (between its last check and this `finally`) starts again. */
  private kick(): void {
    this.active ??= this.drain().finally(() => {
      this.active = null;
      if (this.queues.size > 0 && !this.opts.signal.aborted) this.kick();
    });
  }

  /** The next tenant's first backfill whose rate allows a chunk now; else how long until one does (ms). */
  private next(now: number): Job | number {
    let soonest = Infinity;
    for (const [tenant, queue] of this.queues) {
      const job = queue[0]!;
      if (job.nextAt <= now) {
        // Its turn is used: the tenant goes to the back of the line.
        this.queues.delete(tenant);
        this.queues.set(tenant, queue);
        return job;
      }
      soonest = Math.min(soonest, job.nextAt - now);
    }
    return soonest;
  }

  private async drain(): Promise<void> {
    const { signal } = this.opts;
    while (this.queues.size > 0 && !signal.aborted) {
      const job = this.next(performance.now());
      if (typeof job === 'number') {
        // Every backfill waits for its rate: sleep until the first may go, or a new one arrives.
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          void sleep(job, signal).catch(() => undefined).then(resolve);
        });
        this.wake = null;
        continue;
      }
      const started = performance.now();
      const ended = await this.step(job);
      const took = performance.now() - started;
      if (ended) {
        // Its last chunk: the next backfill goes on at once, as a backfill's chunks did (the
        // pause below is between the chunks of one backfill).
        this.remove(job);
        continue;
      }
      // (A failed step has set its own backoff.)
      if (job.failures === 0) {
        job.nextAt = started + Math.max(took, job.rate > 0 ? (job.chunk / job.rate) * 1000 : 0);
        // The next chunk aims at CHUNK_MS: one chunk is a burst of the store's cores that the
        // other tenants' commits (and this process's ingest) wait behind.
        job.chunk = Math.round(Math.max(MIN_CHUNK_EVENTS, Math.min(job.maxChunk, job.chunk * Math.min(2, CHUNK_MS / Math.max(took, 1)))));
      }
      // Live commits keep at least half of the store's time.
      await sleep(took, signal).catch(() => undefined);
    }
  }

  private remove(job: Job): void {
    const queue = this.queues.get(job.tenant)!.filter((j) => j !== job);
    if (queue.length === 0) this.queues.delete(job.tenant);
    else this.queues.set(job.tenant, queue);
  }

  /** One chunk of `job`; true once the backfill has ended (done, failed or gone). */
  private async step(job: Job): Promise<boolean> {
    let s: BackfillState;
    try {
      s = await this.store.backfills.step(job.id, job.chunk);
      job.failures = 0;
    } catch (e: unknown) {
      // The engine may quote a row's value: the view's error and the log get it without.
      const message = redactValues(coerceError(e).message);
      if (++job.failures >= 5) {
        this.opts.logger?.error({ backfill: job.id, err: message }, 'backfill failed');
        await this.store.backfills.fail(job.id, message).catch(() => undefined);
        return true;
      }
      this.opts.logger?.warn({ backfill: job.id, err: message }, 'backfill step failed; retrying');
      job.nextAt = performance.now() + backoffDelay(job.failures, 500, 10_000);
      return false;
    }
    if (s.status !== 'running') {
      this.opts.logger?.info({ backfill: job.id, events: s.done, seconds: ((s.finishedAt ?? Date.now()) - s.startedAt) / 1000 }, 'backfill done');
      return true;
    }
    return false;
  }
}

/**
 * A chunk aims at this long (ms): after each, the next one's events are scaled by CHUNK_MS /
 * what it took (at most doubled), between MIN_CHUNK_EVENTS and the backfill's largest chunk
 * (its rate, or `chunkEvents`, 200,000 by default). A chunk runs on a connection of its own
 * beside live commits; what they wait for is its commit, which writes the chunk's rows out
 * (DuckDB commits one transaction at a time), so a chunk's size is bounded in events (the
 * store ends it at the time of its n-th event, backfill-plan.ts ChunkSpans) and in time. When
 * chunks were whole buckets of up to 200,000 events, a tenant's freshness p99 beside another
 * tenant's twenty costly view builds was 5.1x and 17x its figure without them; with chunks of
 * the events asked for, aimed at 100 ms, the builds took longer than the test's two minutes
 * beside other test files (a chunk merges into the table built so far, and every chunk pays
 * that); at 250 ms, 1.3x (test/tenants/views.a-tenants-costly-views-…, with the other build
 * and view tests beside it), chunks' commits 5-90 ms.
 */
const CHUNK_MS = 250;
const MIN_CHUNK_EVENTS = 1_000;
/** A backfill's first chunk, before its cost is known. */
const FIRST_CHUNK_EVENTS = 10_000;

/** A queued backfill: its chunk size (events), and when its rate or a retry lets it run again (performance.now() ms). */
interface Job {
  id: string;
  tenant: string;
  rate: number;
  /** Events of its next chunk (see CHUNK_MS), at most `maxChunk`. */
  chunk: number;
  maxChunk: number;
  failures: number;
  nextAt: number;
}
