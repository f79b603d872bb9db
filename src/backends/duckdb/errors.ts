import { coerceError, NonRetryableError, RetryAfterError, SluiceError } from '../../core/errors.js';
import { redactValues } from '../../core/redact.js';

/** A damaged store file: reported as such, never retried as if it were transient. */
export function damaged(file: string, e: unknown): SluiceError {
  return new SluiceError(
    'SLUICE_ERR_DATA_DAMAGED',
    `${file} is damaged (${coerceError(e).message}). sluice will not serve from it: stop, move it aside and restore it from a backup (ingest goes on meanwhile: new events wait in the log)`,
    { cause: e },
  );
}

/** DuckDB's out-of-memory errors: the store's passing fault, retried, never a row's or a definition's. */
export const OUT_OF_MEMORY = /Out of Memory|could not allocate|failed to allocate/i;

/**
 * A failed commit: the row's fault (NonRetryableError: the consumer isolates the row and
 * dead-letters it) or the store's (RetryAfterError: the batch is retried, nothing is
 * dead-lettered). Out of memory is the store's, and so is a duplicate key: sluice dedupes
 * before the store, so a duplicate is state a failed commit left (a view's rows after an
 * out-of-memory error), never the event's fault.
 */
export function classifyCommitError(e: unknown): Error {
  const err = coerceError(e);
  // The engine quotes the offending value: it goes into dead letters and logs without it.
  const message = redactValues(err.message);
  const storeFault = OUT_OF_MEMORY.test(message) || /Duplicate key/i.test(message);
  if (!storeFault && /Conversion Error|Invalid Input Error|Constraint Error|Out of Range/i.test(message)) {
    return new NonRetryableError(message, { cause: err });
  }
  return new RetryAfterError(`store commit failed: ${message}`, 500, { cause: err });
}
