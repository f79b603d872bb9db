import type { DuckDBConnection } from '@duckdb/node-api';
import { RetryAfterError } from '../../core/errors.js';

/**
 * Runs `fn` on the reader `c` (a connection of the read pool, held by this query alone),
 * interrupting it after `timeoutMs` (ms, counted from now: the caller's wait for a reader is
 * bounded apart) or when `signal` aborts. DuckDB's `interrupt()` stops the running query of
 * that connection only, so a timeout never stops another request's query.
 *
 * Errors: a query stopped by its timeout rejects with RetryAfterError (503 with Retry-After,
 * the DuckDB error as its cause); one stopped by `signal`, or failing otherwise, rejects with
 * DuckDB's own error.
 */
export async function timedRead<T>(c: DuckDBConnection, fn: (c: DuckDBConnection) => Promise<T>, signal: AbortSignal | undefined, timeoutMs: number): Promise<T> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    c.interrupt();
  }, timeoutMs);
  const onAbort = (): void => c.interrupt();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await fn(c);
  } catch (e: unknown) {
    if (timedOut) throw new RetryAfterError(`the query ran past its ${timeoutMs} ms timeout`, 0, { cause: e });
    throw e;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}
