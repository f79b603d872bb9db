import { isUtf8 } from 'node:buffer';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { SluiceError } from '../core/errors.js';

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
    throw new SluiceError('SLUICE_ERR_INVALID_JSON', `the body is not valid JSON: ${(e as Error).message}`, { field: 'body' });
  }
}

/** The events of an ingest body: an array, `{ "batch": [...] }`, or a single event. */
export function eventsOf(body: unknown, maxEvents: number): unknown[] {
  let events: unknown[];
  if (Array.isArray(body)) events = body;
  else if (body !== null && typeof body === 'object' && 'batch' in body) {
    const batch = (body as { batch: unknown }).batch;
    if (!Array.isArray(batch)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"batch" must be an array of events', { field: 'batch' });
    const extra = Object.keys(body).find((k) => k !== 'batch');
    if (extra) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `unknown field "${extra}" beside "batch"`, { field: extra });
    events = batch;
  } else if (body !== null && typeof body === 'object') events = [body];
  else throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'the body must be an event object, an array of events or { "batch": [...] }', { field: 'body' });
  if (events.length > maxEvents) {
    throw new SluiceError('SLUICE_ERR_TOO_MANY_EVENTS', `the batch has ${events.length} events; the limit is ${maxEvents}`, { field: 'batch' });
  }
  return events;
}
