/**
 * Time, injected. Everything that depends on time (leases, backoff, retention, conservation
 * windows, quotas, the dedupe horizon, alert evaluation, rollout steps) takes a `Clock`
 * instead of reading `Date.now()` or calling `setTimeout` itself, so that tests drive time
 * with a `ManualClock` instead of sleeping.
 *
 * Units: epoch milliseconds for instants, milliseconds for durations.
 */
export interface Clock {
  /** The current instant, epoch ms (`Date.now()` on the system clock). */
  now(): number;
  /** Runs `fn` once after `ms` (at least 0). The handle cancels it with `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /**
   * Resolves after `ms`, or rejects with the signal's reason as soon as it aborts (as
   * `node:timers/promises`' `setTimeout` does).
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** An opaque timer handle; `unref` keeps a system timer from holding the process open. */
export interface TimerHandle {
  unref?(): unknown;
}

function sleepOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The wall clock and Node's timers. Timers it makes are unref'd: a pending one never keeps the process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  sleep(ms, signal) {
    return sleepOn(systemClock, ms, signal);
  },
};

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that moves only when told to: `advance(ms)` runs every timer that falls due, in
 * order of due time (then of creation), each at its own instant, and lets the promise
 * callbacks they trigger run before the next one (so a loop that awaits and re-arms a timer
 * behaves as it would in real time).
 */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.pending.set(id, { at: this.current + Math.max(0, ms), seq: id, fn });
    return { id } as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.pending.delete((handle as { id: number }).id);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Timers not yet run. */
  get timers(): number {
    return this.pending.size;
  }

  /** Moves time forward by `ms`, running the timers that fall due on the way. */
  async advance(ms: number): Promise<void> {
    const until = this.current + ms;
    for (;;) {
      await flushMicrotasks();
      let next: Pending | null = null;
      for (const p of this.pending.values()) if (p.at <= until && (!next || p.at < next.at || (p.at === next.at && p.seq < next.seq))) next = p;
      if (!next) break;
      this.pending.delete(next.seq);
      this.current = Math.max(this.current, next.at);
      next.fn();
    }
    this.current = until;
    await flushMicrotasks();
  }

  /** Sets the time (forward only), running what falls due. */
  advanceTo(at: number): Promise<void> {
    return this.advance(Math.max(0, at - this.current));
  }
}

/** Lets pending promise callbacks run (a few turns, for chains of awaits). */
async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
  await new Promise<void>((resolve) => setImmediate(resolve));
}
