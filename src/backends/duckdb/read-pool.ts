import { RetryAfterError } from '../../core/errors.js';

/**
 * A bounded pool of readers (store connections) shared fairly by tenants.
 *
 * - At most `perTenant` of the readers serve one tenant at a time, so one tenant's heavy
 *   queries leave the others readers to run on.
 * - A freed reader goes to the waiting tenant that holds the fewest readers (ties: the one
 *   longest in line; first come first served within a tenant), so a tenant with many queries
 *   queued does not take every reader that frees up.
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
  /** Timers (the system's by default): tests drive them. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
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
    try {
      return await fn(reader);
    } finally {
      this.release(tenant, reader);
    }
  }

  private acquire(tenant: string, signal?: AbortSignal): Promise<R> {
    if (signal?.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (this.free.length > 0 && (this.running.get(tenant) ?? 0) < this.opts.perTenant && !this.queues.has(tenant)) {
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
   * holding the fewest readers first, ties to the one that has waited longest for its turn.
   */
  private dispatch(): void {
    while (this.free.length > 0) {
      let pick = -1;
      let least = Infinity;
      for (let i = 0; i < this.turn.length; i++) {
        const held = this.running.get(this.turn[i]!) ?? 0;
        if (held < this.opts.perTenant && held < least) [pick, least] = [i, held];
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
