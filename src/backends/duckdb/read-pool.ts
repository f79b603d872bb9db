import { RetryAfterError } from '../../core/errors.js';

/**
 * A bounded pool of readers (store connections) shared fairly by tenants.
 *
 * - At most `perTenant` of the readers serve one tenant at a time, so one tenant's heavy
 *   queries leave the others readers to run on.
 * - A freed reader goes to the waiting tenant that holds the fewest readers, then to the one
 *   that has used the least query time lately (ties: the one longest in line; first come
 *   first served within a tenant), so a tenant with many queries queued does not take every
 *   reader that frees up.
 * - A tenant holds a second reader (up to `perTenant`) only while no other tenant is active
 *   (running, waiting, or done with a query within `activeWindowMs`). A running query is a
 *   thread on the machine's cores (DuckDB runs it on its reader's thread, see store.ts): a
 *   tenant running heavy queries side by side would take two of two cores from a
 *   neighbour's small ones. Running queries are never stopped for it: a neighbour that
 *   becomes active meets at most the queries the tenant had already started.
 * - Used query time is the running time of a tenant's queries, halved every `halfLifeMs` (an
 *   exponentially decayed sum, as weighted fair queuing counts consumed service).
 * - Each query holds its own reader: interrupting it on timeout stops that query only.
 * - Waiting in line is bounded (`maxWaitMs`) and reported (`waiting`), apart from running.
 *
 * States of a request: waiting (in its tenant's queue) → running (holds a reader) → released.
 * A waiting request whose signal aborts, or that waits past `maxWaitMs`, leaves the queue
 * with an error and never holds a reader.
 */
export interface ReadPoolOptions {
  /** Readers a single tenant may hold at once (at least 1). */
  perTenant: number;
  /** Longest wait for a reader before the request is refused (503, retry later). */
  maxWaitMs: number;
  /** How long after its last query a tenant still counts as active (ms, default 2,000). */
  activeWindowMs?: number;
  /** Half-life of a tenant's used query time (ms, default 10,000). */
  halfLifeMs?: number;
  /** Timers (the system's by default): tests drive them. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /** Milliseconds, monotonic within the pool's life (performance.now by default): tests drive it. */
  now?: () => number;
}

/** A tenant's used query time: `ms` as of `at`, decaying with the pool's half-life. */
interface Usage {
  ms: number;
  at: number;
  /** When its last query ended (or -Infinity while it has never ended one). */
  lastEnd: number;
}

interface Waiter<R> {
  tenant: string;
  grant: (reader: R) => void;
  fail: (e: Error) => void;
}

export class ReadPool<R> {
  private readonly free: R[];
  private readonly queues = new Map<string, Waiter<R>[]>();
  /** Tenants with waiters, in the order they are served next. */
  private readonly turn: string[] = [];
  private readonly running = new Map<string, number>();
  private readonly usage = new Map<string, Usage>();

  constructor(
    readers: readonly R[],
    private readonly opts: ReadPoolOptions,
  ) {
    if (readers.length === 0) throw new Error('a read pool needs at least one reader');
    this.free = [...readers];
  }

  /** Requests waiting for a reader, all tenants together. */
  get waiting(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** Readers in use, all tenants together. */
  get busy(): number {
    let n = 0;
    for (const v of this.running.values()) n += v;
    return n;
  }

  /** Runs `fn` on a reader of its own once the tenant's turn comes; the reader is released after. */
  async run<T>(tenant: string, fn: (reader: R) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const reader = await this.acquire(tenant, signal);
    const started = this.now();
    try {
      return await fn(reader);
    } finally {
      this.charge(tenant, this.now() - started);
      this.release(tenant, reader);
    }
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : performance.now();
  }

  /** `tenant`'s used query time now (ms, decayed). */
  private used(tenant: string, now: number): number {
    const u = this.usage.get(tenant);
    return u ? u.ms * 0.5 ** ((now - u.at) / (this.opts.halfLifeMs ?? 10_000)) : 0;
  }

  private charge(tenant: string, ms: number): void {
    const now = this.now();
    this.usage.set(tenant, { ms: this.used(tenant, now) + ms, at: now, lastEnd: now });
    // Forget tenants whose usage has decayed away, so the map holds active tenants only.
    if (this.usage.size > 64) for (const [t, u] of this.usage) if (t !== tenant && !this.running.has(t) && !this.queues.has(t) && this.used(t, now) < 1) this.usage.delete(t);
  }

  /**
   * Whether `tenant`, holding `held` readers, may take one more: under `perTenant`, and
   * beyond its first only while no other tenant is active.
   */
  private mayTake(tenant: string, held: number): boolean {
    if (held >= this.opts.perTenant) return false;
    if (held === 0) return true;
    const now = this.now();
    const window = this.opts.activeWindowMs ?? 2_000;
    for (const other of this.running.keys()) if (other !== tenant) return false;
    for (const other of this.queues.keys()) if (other !== tenant) return false;
    for (const [other, u] of this.usage) if (other !== tenant && now - u.lastEnd <= window) return false;
    return true;
  }

  private acquire(tenant: string, signal?: AbortSignal): Promise<R> {
    if (signal?.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (this.free.length > 0 && this.mayTake(tenant, this.running.get(tenant) ?? 0) && !this.queues.has(tenant)) {
      this.running.set(tenant, (this.running.get(tenant) ?? 0) + 1);
      return Promise.resolve(this.free.pop()!);
    }
    const setT = this.opts.setTimeout ?? ((fn: () => void, ms: number) => setTimeout(fn, ms).unref());
    const clearT = this.opts.clearTimeout ?? ((h: unknown) => clearTimeout(h as NodeJS.Timeout));
    return new Promise<R>((resolve, reject) => {
      const leave = (): void => {
        const q = this.queues.get(tenant);
        const i = q?.indexOf(waiter) ?? -1;
        if (q && i >= 0) q.splice(i, 1);
        if (q && q.length === 0) this.dropTenant(tenant);
      };
      const done = (): void => {
        clearT(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter<R> = {
        tenant,
        grant: (reader) => {
          done();
          resolve(reader);
        },
        fail: (e) => {
          done();
          reject(e);
        },
      };
      const timer = setT(() => {
        leave();
        waiter.fail(new RetryAfterError(`waited ${this.opts.maxWaitMs} ms for a free reader: the store is busy with other queries; retry shortly`, 1_000));
      }, this.opts.maxWaitMs);
      const onAbort = (): void => {
        leave();
        waiter.fail(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let q = this.queues.get(tenant);
      if (!q) {
        this.queues.set(tenant, (q = []));
        this.turn.push(tenant);
      }
      q.push(waiter);
      this.dispatch();
    });
  }

  private release(tenant: string, reader: R): void {
    const n = (this.running.get(tenant) ?? 1) - 1;
    if (n > 0) this.running.set(tenant, n);
    else this.running.delete(tenant);
    this.free.push(reader);
    this.dispatch();
  }

  /**
   * Hands free readers to waiting tenants within each tenant's share: the waiting tenant
   * holding the fewest readers first, then the one that has used the least query time lately,
   * ties to the one that has waited longest for its turn.
   */
  private dispatch(): void {
    while (this.free.length > 0) {
      let pick = -1;
      let least = Infinity;
      let leastUsed = Infinity;
      const now = this.now();
      for (let i = 0; i < this.turn.length; i++) {
        const tenant = this.turn[i]!;
        const held = this.running.get(tenant) ?? 0;
        if (!this.mayTake(tenant, held)) continue;
        const used = this.used(tenant, now);
        if (held < least || (held === least && used < leastUsed)) [pick, least, leastUsed] = [i, held, used];
      }
      if (pick < 0) return;
      const tenant = this.turn.splice(pick, 1)[0]!;
      const q = this.queues.get(tenant)!;
      const waiter = q.shift()!;
      if (q.length === 0) this.queues.delete(tenant);
      else this.turn.push(tenant); // served: to the back of the line
      this.running.set(tenant, least + 1);
      waiter.grant(this.free.pop()!);
    }
  }

  private dropTenant(tenant: string): void {
    this.queues.delete(tenant);
    const i = this.turn.indexOf(tenant);
    if (i >= 0) this.turn.splice(i, 1);
  }

  /** Fails every waiting request (the store is closing). Must not throw. */
  close(reason: Error): void {
    for (const q of this.queues.values()) for (const w of q.splice(0)) w.fail(reason);
    this.queues.clear();
    this.turn.length = 0;
  }
}
