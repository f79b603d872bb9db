import { systemClock, type Clock } from './clock.js';

/** Exponential backoff with full jitter (the AWS architecture blog's variant): sleep a random
 * time in [0, min(cap, base * 2^attempt)). `attempt` starts at 0. */
export function backoffDelay(attempt: number, baseMs = 50, capMs = 5_000, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Calls `fn` until it resolves. An error `retryable` accepts (every error by default) is
 * tried again after `backoffDelay(attempt, baseMs, capMs)` (at least 1 ms), as long as the
 * clock is before `deadline` (epoch ms); any other error, or one at or past the deadline, is
 * thrown as it was. `onRetry` hears each error retried (attempt 1, 2, …).
 */
export async function retryUntil<T>(
  fn: () => Promise<T>,
  opts: {
    deadline: number;
    baseMs: number;
    capMs: number;
    retryable?: (e: unknown) => boolean;
    clock?: Pick<Clock, 'now' | 'sleep'>;
    random?: () => number;
    onRetry?: (e: unknown, attempt: number) => void;
  },
): Promise<T> {
  // Not systemClock's sleep, whose timer is unref'd: whoever retries waits for the answer, and
  // a process whose only pending work was this wait (a role starting while NATS is down)
  // ended mid-wait with exit code 0 and no word. This sleep keeps the process alive.
  const clock = opts.clock ?? { now: systemClock.now, sleep };
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e: unknown) {
      if (!(opts.retryable?.(e) ?? true) || clock.now() >= opts.deadline) throw e;
      opts.onRetry?.(e, attempt + 1);
      await clock.sleep(Math.max(1, backoffDelay(attempt, opts.baseMs, opts.capMs, opts.random)));
    }
  }
}
