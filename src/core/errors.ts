/**
 * The one catalogue of sluice's error codes. Every error that reaches a user carries one
 * of these codes, its HTTP status and a message that names the field at fault. HTTP
 * handlers map errors to responses in one place (ingest/errors.ts) using this table.
 */
export const ERRORS = {
  SLUICE_ERR_INVALID_JSON: { status: 400, title: 'Bad Request' },
  SLUICE_ERR_INVALID_BODY: { status: 400, title: 'Bad Request' },
  SLUICE_ERR_INVALID_ENCODING: { status: 400, title: 'Bad Request' },
  SLUICE_ERR_INVALID_EVENT: { status: 400, title: 'Bad Request' },
  SLUICE_ERR_INVALID_QUERY: { status: 400, title: 'Bad Request' },
  SLUICE_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported Media Type' },
  SLUICE_ERR_UNAUTHORIZED: { status: 401, title: 'Unauthorized' },
  SLUICE_ERR_FORBIDDEN: { status: 403, title: 'Forbidden' },
  SLUICE_ERR_NOT_FOUND: { status: 404, title: 'Not Found' },
  SLUICE_ERR_BODY_TOO_LARGE: { status: 413, title: 'Payload Too Large' },
  SLUICE_ERR_EVENT_TOO_LARGE: { status: 413, title: 'Payload Too Large' },
  SLUICE_ERR_TOO_MANY_EVENTS: { status: 413, title: 'Payload Too Large' },
  SLUICE_ERR_QUERY_TOO_LARGE: { status: 422, title: 'Unprocessable Entity' },
  SLUICE_ERR_TRANSFORM_TOO_COSTLY: { status: 422, title: 'Unprocessable Entity' },
  SLUICE_ERR_QUOTA_EXCEEDED: { status: 429, title: 'Too Many Requests' },
  SLUICE_ERR_LOG_UNAVAILABLE: { status: 503, title: 'Service Unavailable' },
  SLUICE_ERR_STORE_UNAVAILABLE: { status: 503, title: 'Service Unavailable' },
  SLUICE_ERR_CATALOG_UNAVAILABLE: { status: 503, title: 'Service Unavailable' },
  SLUICE_ERR_SHUTTING_DOWN: { status: 503, title: 'Service Unavailable' },
  SLUICE_ERR_OVERLOADED: { status: 503, title: 'Service Unavailable' },
  SLUICE_ERR_QUERY_TIMEOUT: { status: 504, title: 'Gateway Timeout' },
  SLUICE_ERR_FENCED: { status: 409, title: 'Conflict' },
  SLUICE_ERR_CONFLICT: { status: 409, title: 'Conflict' },
  SLUICE_ERR_INCOMPATIBLE_SCHEMA: { status: 409, title: 'Conflict' },
  SLUICE_ERR_CONFIG: { status: 500, title: 'Internal Server Error' },
  SLUICE_ERR_DATA_DAMAGED: { status: 500, title: 'Internal Server Error' },
  SLUICE_ERR_INTERNAL: { status: 500, title: 'Internal Server Error' },
  SLUICE_ERR_NOT_SUPPORTED: { status: 501, title: 'Not Implemented' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export interface SluiceErrorOptions {
  /** JSON pointer or dotted name of the field at fault, when there is one. */
  field?: string;
  /** Seconds a client should wait before retrying (sets `Retry-After`). */
  retryAfter?: number;
  /** Structured detail for the response body (`details`), e.g. the incompatibilities of a schema. */
  details?: unknown;
  cause?: unknown;
}

export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly field: string | undefined;
  readonly retryAfter: number | undefined;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: SluiceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SluiceError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.field = options.field;
    this.retryAfter = options.retryAfter;
    this.details = options.details;
  }
}

/**
 * A failure that will not go away by retrying the same input: the event is at fault.
 * Workers dead-letter the event after its attempts run out.
 */
export class NonRetryableError extends Error {
  readonly code = 'SLUICE_NON_RETRYABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NonRetryableError';
  }
}

/** A transient failure: retry the same work later, never dead-letter because of it. */
export class RetryAfterError extends Error {
  readonly code = 'SLUICE_RETRY_AFTER';
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetryAfterError';
    this.retryAfterMs = retryAfterMs;
  }
}

/** Thrown when a lease was lost to a newer owner; the holder must stop touching the partition. */
export class FencedError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_FENCED', message);
    this.name = 'FencedError';
  }
}

export function isNonRetryable(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'SLUICE_NON_RETRYABLE';
}

export function isFenced(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'SLUICE_ERR_FENCED';
}

/** Every `catch (e: unknown)` goes through here, so that what we handle is always an Error. */
export function coerceError(e: unknown): Error {
  if (e instanceof Error) return e;
  if (typeof e === 'string') return new Error(e);
  try {
    return new Error(JSON.stringify(e));
  } catch {
    return new Error(String(e));
  }
}

// DuckDB's error classes for a value it cannot read or convert (its message starts with the class).
const DUCKDB_DATA_ERROR = /^(Conversion|Invalid Input|Out of Range|Mismatch Type) Error\b/;

/**
 * A store's refusal of the data a statement met (a stored value it cannot read or convert),
 * as the error a caller sees, or null for anything else: DuckDB's conversion, invalid-input
 * and out-of-range errors, PostgreSQL's SQLSTATE class 22 (data exception). It is not the
 * store being unavailable: not retryable (no Retry-After), other queries go on, and the
 * message never quotes the store's own (which can hold the offending value, a payload).
 */
export function storeDataError(e: unknown): SluiceError | null {
  if (e instanceof SluiceError) return null;
  const err = coerceError(e);
  const sqlstate = (e as { code?: unknown }).code;
  const duck = DUCKDB_DATA_ERROR.exec(err.message);
  const pg = typeof sqlstate === 'string' && /^22[0-9A-Z]{3}$/.test(sqlstate);
  if (!duck && !pg) return null;
  const kind = duck ? `${duck[1]} Error` : `SQLSTATE ${sqlstate as string}`;
  return new SluiceError(
    'SLUICE_ERR_DATA_DAMAGED',
    `a stored value in this query's range cannot be read by the store (${kind}); this query cannot be answered as asked, other queries are unaffected: narrow the range or the fields, and see the server log for the rows`,
    { cause: err },
  );
}
