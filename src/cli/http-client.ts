import { backoffDelay, sleep } from '../core/backoff.js';

/**
 * The CLI's HTTP calls: JSON in and out, retried on network errors, 429 and 5xx (honouring
 * Retry-After) with exponential backoff and jitter, never on other 4xx.
 */

export interface CallResult {
  status: number;
  body: unknown;
  headers: Headers;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    const b = body as { message?: string; code?: string } | null;
    super(b && typeof b === 'object' && b.message ? `${status} ${b.code ?? ''}: ${b.message}` : `HTTP ${status}`);
  }
}

/**
 * The server is not there: a refused connection (or an unknown host) before this process has
 * ever reached it. Not retried: the user is told at once where the CLI looked and how to
 * point it elsewhere. Once a server has answered, a refused connection is a restart in
 * progress and is retried like any network error.
 */
export class UnreachableError extends Error {
  constructor(readonly url: string, cause: unknown) {
    super(`cannot reach sluice at ${new URL(url).origin}: is it running? (--url, SLUICE_URL)`, { cause });
  }
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
let reached = false;

/** `fetch`, with a refused connection to a server never reached turned into an UnreachableError. */
export async function fetchSluice(url: string, init: RequestInit = {}): Promise<Response> {
  try {
    const res = await fetch(url, init);
    reached = true;
    return res;
  } catch (e: unknown) {
    const code = ((e as { cause?: { code?: string } }).cause ?? {}).code;
    if (!reached && code !== undefined && UNREACHABLE.has(code)) throw new UnreachableError(url, e);
    throw e;
  }
}

function retryable(status: number): boolean {
  return status === 429 || status >= 500;
}

export interface CallOptions {
  maxAttempts?: number;
  onRetry?: (reason: string, delayMs: number) => void;
  signal?: AbortSignal;
}

export function postJson(url: string, key: string, payload: unknown, options: CallOptions = {}): Promise<CallResult> {
  return callJson('POST', url, key, payload, options);
}

/** One JSON call (no body when `payload` is undefined), retried as described above. */
export async function callJson(method: string, url: string, key: string, payload: unknown, options: CallOptions = {}): Promise<CallResult> {
  const body = payload === undefined ? undefined : JSON.stringify(payload);
  const max = options.maxAttempts ?? 20;
  for (let attempt = 0; ; attempt++) {
    let reason: string;
    let retryAfterMs: number | null = null;
    try {
      const res = await fetchSluice(url, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body,
        signal: options.signal,
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        // Not JSON: keep the text for the error message.
      }
      if (res.ok) return { status: res.status, body: parsed, headers: res.headers };
      if (!retryable(res.status)) throw new HttpError(res.status, parsed);
      reason = `HTTP ${res.status}`;
      const ra = Number(res.headers.get('retry-after'));
      if (Number.isFinite(ra) && ra > 0) retryAfterMs = ra * 1000;
    } catch (e: unknown) {
      if (e instanceof HttpError || e instanceof UnreachableError || options.signal?.aborted) throw e;
      reason = (e as Error).message;
    }
    if (attempt + 1 >= max) throw new Error(`giving up after ${max} attempts: ${reason}`);
    const delay = Math.max(retryAfterMs ?? 0, backoffDelay(attempt, 100, 10_000));
    options.onRetry?.(reason, delay);
    await sleep(delay, options.signal);
  }
}
