import { isUtf8 } from 'node:buffer';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { SluiceError } from '../core/errors.js';
import { redactJsonError } from '../core/redact.js';
import { parseRfc3339 } from '../core/time.js';

const gunzip = promisify(zlib.gunzip);

/**
 * Turns a request body into a JSON value, treating every byte as hostile: the compressed
 * size is capped by the HTTP server, the decompressed size here (a gzip bomb stops at the
 * cap, in zlib's thread pool, not on the event loop), bytes must be valid UTF-8, and the
 * text must be JSON.
 */
export async function decodeJsonBody(raw: Buffer, encoding: string | undefined, maxDecompressed: number): Promise<unknown> {
  let bytes = raw;
  const enc = (encoding ?? 'identity').trim().toLowerCase();
  if (enc === 'gzip' || enc === 'x-gzip') {
    try {
      bytes = await gunzip(raw, { maxOutputLength: maxDecompressed });
    } catch (e: unknown) {
      if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
        throw new SluiceError('SLUICE_ERR_BODY_TOO_LARGE', `the body decompresses to more than ${maxDecompressed} bytes`, { field: 'body' });
      }
      throw new SluiceError('SLUICE_ERR_INVALID_ENCODING', 'the body is not valid gzip although Content-Encoding says gzip', { field: 'Content-Encoding' });
    }
  } else if (enc !== 'identity') {
    throw new SluiceError('SLUICE_ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Encoding "${enc}" is not supported; use gzip or none`, { field: 'Content-Encoding' });
  }
  if (bytes.length > maxDecompressed) {
    throw new SluiceError('SLUICE_ERR_BODY_TOO_LARGE', `the body is larger than ${maxDecompressed} bytes`, { field: 'body' });
  }
  // isUtf8 validates with SIMD; a fatal TextDecoder costs several times more per batch.
  if (!isUtf8(bytes)) throw new SluiceError('SLUICE_ERR_INVALID_ENCODING', 'the body is not valid UTF-8', { field: 'body' });
  const text = bytes.toString('utf8');
  if (text.length === 0) throw new SluiceError('SLUICE_ERR_INVALID_JSON', 'the body is empty; send a JSON event, array of events or { "batch": [...] }', { field: 'body' });
  try {
    return JSON.parse(text) as unknown;
  } catch (e: unknown) {
    throw new SluiceError('SLUICE_ERR_INVALID_JSON', `the body is not valid JSON: ${redactJsonError((e as Error).message)}`, { field: 'body' });
  }
}

/**
 * The events of an ingest body: an array, `{ "batch": [...], "sent_at"?: "…" }`, or a single
 * event. `sent_at` is the producer's clock when it sent the batch (RFC 3339): event times
 * are corrected for the producer's clock skew with it.
 */
export function eventsOf(body: unknown, maxEvents: number): { events: unknown[]; sentAt?: number } {
  let events: unknown[];
  let sentAt: number | undefined;
  if (Array.isArray(body)) events = body;
  else if (body !== null && typeof body === 'object' && 'batch' in body) {
    const { batch, sent_at, ...extra } = body as { batch: unknown; sent_at?: unknown };
    if (!Array.isArray(batch)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"batch" must be an array of events', { field: 'batch' });
    const unknown = Object.keys(extra)[0];
    if (unknown !== undefined) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `unknown field "${unknown}" beside "batch"; a batch has "batch" and "sent_at"`, { field: unknown });
    if (sent_at !== undefined) {
      const t = typeof sent_at === 'string' ? parseRfc3339(sent_at) : null;
      if (t === null) throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"sent_at" must be an RFC 3339 timestamp', { field: 'sent_at' });
      sentAt = t;
    }
    events = batch;
  } else if (body !== null && typeof body === 'object') events = [body];
  else throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'the body must be an event object, an array of events or { "batch": [...] }', { field: 'body' });
  if (events.length > maxEvents) {
    throw new SluiceError('SLUICE_ERR_TOO_MANY_EVENTS', `the batch has ${events.length} events; the limit is ${maxEvents}`, { field: 'batch' });
  }
  return sentAt === undefined ? { events } : { events, sentAt };
}
