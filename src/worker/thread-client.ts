import { Worker } from 'node:worker_threads';
import type { Config } from '../config/schema.js';
import { backoffDelay } from '../core/backoff.js';
import { SluiceError, type ErrorCode } from '../core/errors.js';
import type { CountQuery } from '../core/types.js';
import type { BackfillSpec, BackfillState } from '../ports/backfill.js';
import type { Logger } from '../obs/logger.js';
import type { MetricsJson } from '../obs/metrics.js';
import type { StoreCall, StoreCalls, StoreReader } from '../query/reader.js';
import type { ConservationReply, CountsReply, FromStoreThread, ToStoreThread } from './thread-protocol.js';

/** How long a call waits for a starting store before it is answered 503. */
const READY_WAIT_MS = 5_000;

interface Waiting {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/**
 * The HTTP thread's handle on the store thread. It starts the thread, restarts it with
 * backoff when it dies (ingest goes on meanwhile: the backlog waits in the log), and turns
 * queries into messages.
 *
 * States: starting → running → (died → restarting after a backoff → starting) … → stopping
 * → stopped.
 */
export class StoreThread implements StoreReader {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private stopping = false;
  private restarts = 0;
  private stopped: (() => void) | null = null;
  private ready = false;
  private readonly labelled = new Set<string>();
  /** Events the workers finished, per tenant (ingest's backlog accounting). */
  onProcessed: ((counts: [string, number][]) => void) | null = null;
  /** Why the store could not be opened, until it is (readiness shows it). */
  private unavailable: string | null = null;

  constructor(
    private readonly config: Readonly<Config>,
    private readonly logger: Logger,
    /** Whether the thread runs consumers (a worker), or only serves the store (a query or ingest process). */
    private readonly role: { consume: boolean; hold?: boolean } = { consume: true },
  ) {}

  private begun = false;

  /** Lets held consumers process (see `role.hold`); a restarted thread is never held again. */
  begin(): void {
    this.begun = true;
    this.worker?.postMessage({ op: 'begin' } satisfies ToStoreThread);
  }

  start(): void {
    const worker = new Worker(new URL('./thread.js', import.meta.url), {
      workerData: { config: this.config, consume: this.role.consume, hold: this.role.hold === true && !this.begun },
      // A bounded heap: V8 otherwise grows it lazily while a large backlog drains, and the
      // process's memory would grow with the backlog instead of staying flat.
      resourceLimits: { maxOldGenerationSizeMb: this.config.worker.heapMb, maxYoungGenerationSizeMb: 16 },
    });
    this.worker = worker;
    this.ready = false;
    worker.on('message', (m: FromStoreThread) => this.onMessage(m));
    worker.on('error', (e) => this.logger.error({ err: e.message }, 'store thread failed'));
    worker.on('exit', (code) => this.onExit(code));
  }

  private onMessage(m: FromStoreThread): void {
    switch (m.op) {
      case 'ready':
        this.ready = true;
        this.unavailable = null;
        for (const w of this.readyWaiters.splice(0)) w();
        if (this.labelled.size > 0) this.worker?.postMessage({ op: 'tenants', tenants: [...this.labelled] } satisfies ToStoreThread);
        this.restarts = 0;
        this.logger.info('store thread ready');
        return;
      case 'fatal':
        this.logger.error({ err: m.message }, 'store thread could not start');
        return;
      case 'stopped':
        this.stopped?.();
        return;
      case 'processed':
        this.onProcessed?.(m.counts);
        return;
      case 'unavailable':
        this.unavailable = m.message;
        return;
      case 'reply': {
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        if (m.ok) w.resolve(m.value);
        else w.reject(new SluiceError(m.code as ErrorCode, m.message, { retryAfter: m.code === 'SLUICE_ERR_STORE_UNAVAILABLE' ? 1 : undefined, field: m.field }));
      }
    }
  }

  private onExit(code: number): void {
    this.worker = null;
    this.ready = false;
    for (const w of this.waiting.values()) w.reject(new SluiceError('SLUICE_ERR_STORE_UNAVAILABLE', 'the store thread stopped', { retryAfter: 1 }));
    this.waiting.clear();
    if (this.stopping) {
      this.stopped?.();
      return;
    }
    const delay = backoffDelay(this.restarts++, 500, 30_000);
    this.logger.error({ exitCode: code, restartInMs: delay }, 'store thread exited; restarting');
    setTimeout(() => {
      if (!this.stopping) this.start();
    }, delay).unref();
  }

  private readyWaiters: (() => void)[] = [];

  /** Resolves true once the store thread is ready (its consumers hold their first leases), false after `ms`. */
  whenReady(ms: number): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        // Gone from the list when it gives up: a store that never opens holds no waiters.
        this.readyWaiters = this.readyWaiters.filter((w) => w !== waiter);
        resolve(false);
      }, ms);
      this.readyWaiters.push(waiter);
    });
  }

  private call<T>(message: ToStoreThread & { id: number }): Promise<T> {
    const worker = this.worker;
    if (!worker) return Promise.reject(new SluiceError('SLUICE_ERR_STORE_UNAVAILABLE', 'the store is restarting', { retryAfter: 1 }));
    // Until the store is open, a call that needs it waits a little (a start takes a fraction
    // of a second), then is answered 503 rather than left waiting without bound.
    if (!this.ready && message.op !== 'metrics' && message.op !== 'conservation') {
      return this.whenReady(READY_WAIT_MS).then((ready) =>
        ready ? this.call<T>(message) : Promise.reject(new SluiceError('SLUICE_ERR_STORE_UNAVAILABLE', `the store is not open: ${this.unavailable ?? 'starting'}`, { retryAfter: 1 })),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(message.id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage(message);
    });
  }

  /** New records are in the log. Cheap; safe to call after every group commit. */
  notify(): void {
    if (this.ready) this.worker?.postMessage({ op: 'notify' } satisfies ToStoreThread);
  }

  async counts(query: CountQuery) {
    const r = await this.call<CountsReply>({ op: 'counts', id: this.nextId++, query });
    return { rows: r.rows, applied: new Map(r.applied) };
  }

  private storeCall<M extends StoreCall>(method: M, ...args: Parameters<StoreCalls[M]>): ReturnType<StoreCalls[M]> {
    return this.call({ op: 'call', id: this.nextId++, method, args }) as ReturnType<StoreCalls[M]>;
  }

  query: StoreCalls['query'] = (...a) => this.storeCall('query', ...a);
  putView: StoreCalls['putView'] = (...a) => this.storeCall('putView', ...a);
  removeView: StoreCalls['removeView'] = (...a) => this.storeCall('removeView', ...a);
  listViews: StoreCalls['listViews'] = (...a) => this.storeCall('listViews', ...a);
  searchEvents: StoreCalls['searchEvents'] = (...a) => this.storeCall('searchEvents', ...a);
  findEvent: StoreCalls['findEvent'] = (...a) => this.storeCall('findEvent', ...a);

  startBackfill(spec: BackfillSpec): Promise<BackfillState> {
    return this.call<BackfillState>({ op: 'backfill-start', id: this.nextId++, spec });
  }

  backfills(tenant: string): Promise<BackfillState[]> {
    return this.call<BackfillState[]>({ op: 'backfill-list', id: this.nextId++, tenant });
  }

  recent(tenant: string, type: string, limit: number): Promise<string[]> {
    return this.call<string[]>({ op: 'recent', id: this.nextId++, tenant, type, limit });
  }

  /** The store thread's metrics, to merge into /metrics. */
  metrics(): Promise<MetricsJson> {
    return this.call<MetricsJson>({ op: 'metrics', id: this.nextId++ });
  }

  /** The last conservation check. */
  conservation(): Promise<ConservationReply> {
    return this.call<ConservationReply>({ op: 'conservation', id: this.nextId++ });
  }

  /** Tenants that have their own metric label (sent again whenever the thread restarts). */
  labelTenants(tenants: string[]): void {
    for (const t of tenants) this.labelled.add(t);
    this.worker?.postMessage({ op: 'tenants', tenants } satisfies ToStoreThread);
  }

  async health(): Promise<{ ok: boolean; detail?: string }> {
    if (!this.ready) return { ok: false, detail: this.unavailable ?? (this.worker ? 'starting' : 'restarting') };
    return this.call({ op: 'health', id: this.nextId++ });
  }

  /** Lets the consumers finish their batch and closes the store. Must not throw. */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.stopping = true;
    const worker = this.worker;
    if (!worker) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.logger.warn('store thread did not stop in time; terminating it');
        void worker.terminate().then(() => resolve());
      }, timeoutMs);
      this.stopped = () => {
        clearTimeout(timer);
        resolve();
      };
      worker.postMessage({ op: 'stop' } satisfies ToStoreThread);
    });
    await worker.terminate().catch(() => undefined);
  }
}
