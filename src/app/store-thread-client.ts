import { Worker } from 'node:worker_threads';
import type { Config } from '../config/schema.js';
import { backoffDelay } from '../core/backoff.js';
import { SluiceError, type ErrorCode } from '../core/errors.js';
import type { CountQuery } from '../core/types.js';
import type { Logger } from '../obs/logger.js';
import type { StoreReader } from '../ports/reader.js';
import { WITHOUT_STORE, type FromStoreThread, type StoreThreadCalls, type StoreThreadEvent, type StoreThreadMethod, type ToStoreThread } from './store-thread-protocol.js';

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
    /**
     * Whether the thread runs consumers (a worker), or only serves the store (a query or ingest
     * process); `ownLabels`: the process does not ingest, so no HTTP thread chooses which
     * tenants get a metric label of their own, and this thread chooses (see store-thread.ts).
     */
    private readonly role: { consume: boolean; hold?: boolean; ownLabels?: boolean } = { consume: true },
  ) {}

  private begun = false;

  /** Lets held consumers process (see `role.hold`); a restarted thread is never held again. */
  begin(): void {
    this.begun = true;
    this.send('begin');
  }

  start(): void {
    const worker = new Worker(new URL('./store-thread.js', import.meta.url), {
      workerData: { config: this.config, consume: this.role.consume, hold: this.role.hold === true && !this.begun, ownLabels: this.role.ownLabels === true },
      // A bounded heap: V8 otherwise grows it lazily while a large backlog drains, and the
      // process's memory would grow with the backlog instead of staying flat. The young
      // generation holds a batch's records while its stages and commit run: at 16 MiB they
      // were copied and promoted on the way (with the positions file's commits, end to end
      // went from 42k to 48k ev/s in `npm run bench -- --only transform`), 64 MiB is a
      // constant 48 MiB more.
      resourceLimits: { maxOldGenerationSizeMb: this.config.worker.heapMb, maxYoungGenerationSizeMb: 64 },
    });
    this.worker = worker;
    this.ready = false;
    worker.on('message', (m: FromStoreThread) => this.onMessage(m));
    worker.on('error', (e) => this.logger.error({ err: e.message }, 'store thread failed'));
    worker.on('exit', (code) => this.onExit(code));
  }

  private onMessage(m: FromStoreThread): void {
    if (m.op === 'event') return this.onEvent(m.event);
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    if (m.ok) w.resolve(m.value);
    else w.reject(new SluiceError(m.code as ErrorCode, m.message, { retryAfter: m.code === 'SLUICE_ERR_STORE_UNAVAILABLE' ? 1 : undefined, field: m.field }));
  }

  private onEvent(e: StoreThreadEvent): void {
    switch (e.kind) {
      case 'ready':
        this.ready = true;
        this.unavailable = null;
        for (const w of this.readyWaiters.splice(0)) w();
        if (this.labelled.size > 0) this.send('labelTenants', [...this.labelled]);
        this.restarts = 0;
        this.logger.info('store thread ready');
        return;
      case 'fatal':
        this.logger.error({ err: e.message }, 'store thread could not start');
        // /readyz names the store with the reason, not "starting".
        this.unavailable = e.message;
        return;
      case 'stopped':
        this.stopped?.();
        return;
      case 'processed':
        this.onProcessed?.(e.counts);
        return;
      case 'unavailable':
        this.unavailable = e.message;
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

  /** Calls `method` in the store thread; rejects with a SluiceError (503 while the store is not open). */
  private call<M extends StoreThreadMethod>(method: M, ...args: Parameters<StoreThreadCalls[M]>): ReturnType<StoreThreadCalls[M]> {
    return this.callUnchecked(method, args) as ReturnType<StoreThreadCalls[M]>;
  }

  private callUnchecked(method: StoreThreadMethod, args: unknown[]): Promise<unknown> {
    const worker = this.worker;
    if (!worker) return Promise.reject(new SluiceError('SLUICE_ERR_STORE_UNAVAILABLE', 'the store is restarting', { retryAfter: 1 }));
    // Until the store is open, a call that needs it waits a little (a start takes a fraction
    // of a second), then is answered 503 rather than left waiting without bound.
    if (!this.ready && !WITHOUT_STORE.has(method)) {
      return this.whenReady(READY_WAIT_MS).then((ready) =>
        ready ? this.callUnchecked(method, args) : Promise.reject(new SluiceError('SLUICE_ERR_STORE_UNAVAILABLE', `the store is not open: ${this.unavailable ?? 'starting'}`, { retryAfter: 1 })),
      );
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ op: 'call', id, method, args } satisfies ToStoreThread);
    });
  }

  /** A notification: no reply. */
  private send<M extends StoreThreadMethod>(method: M, ...args: Parameters<StoreThreadCalls[M]>): void {
    this.worker?.postMessage({ op: 'call', id: 0, method, args } satisfies ToStoreThread);
  }

  /** New records are in the log. Cheap; safe to call after every group commit. */
  notify(): void {
    if (this.ready) this.send('notify');
  }

  async counts(query: CountQuery) {
    const r = await this.call('counts', query);
    return { rows: r.rows, applied: new Map(r.applied) };
  }

  query: StoreReader['query'] = (...a) => this.call('query', ...a);
  putView: StoreReader['putView'] = (...a) => this.call('putView', ...a);
  removeView: StoreReader['removeView'] = (...a) => this.call('removeView', ...a);
  listViews: StoreReader['listViews'] = (...a) => this.call('listViews', ...a);
  listTypedColumns: StoreReader['listTypedColumns'] = (...a) => this.call('listTypedColumns', ...a);
  searchEvents: StoreReader['searchEvents'] = (...a) => this.call('searchEvents', ...a);
  findEvent: StoreReader['findEvent'] = (...a) => this.call('findEvent', ...a);
  storedByMinute: StoreReader['storedByMinute'] = (...a) => this.call('storedByMinute', ...a);
  seriesScan: StoreReader['seriesScan'] = (...a) => this.call('seriesScan', ...a);
  startBackfill: StoreReader['startBackfill'] = (...a) => this.call('startBackfill', ...a);
  backfills: StoreReader['backfills'] = (...a) => this.call('backfills', ...a);
  recent: StoreReader['recent'] = (...a) => this.call('recent', ...a);
  /** The last conservation check. */
  conservation: StoreReader['conservation'] = () => this.call('conservation');

  /** The store thread's metrics, to merge into /metrics. */
  metrics(): ReturnType<StoreThreadCalls['metrics']> {
    return this.call('metrics');
  }

  /** Tenants that have their own metric label (sent again whenever the thread restarts). */
  labelTenants(tenants: string[]): void {
    for (const t of tenants) this.labelled.add(t);
    this.send('labelTenants', tenants);
  }

  async health(): Promise<{ ok: boolean; detail?: string }> {
    if (!this.ready) return { ok: false, detail: this.unavailable ?? (this.worker ? 'starting' : 'restarting') };
    return this.call('health');
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
