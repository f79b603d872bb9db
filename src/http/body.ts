import { isUtf8 } from 'node:buffer';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { SluiceError } from '../core/errors.js';
import { flagContext } from '../core/event.js';
import { redactJsonError } from '../core/redact.js';
import { parseRfc3339 } from '../core/time.js';
import { assertFaithful } from './json-faithful.js';

const gunzip = promisify(zlib.gunzip);

/**
 * The bytes of a request body after its Content-Encoding, treating every byte as hostile:
 * the compressed size is capped by the HTTP server, the decompressed size here (a gzip bomb
 * stops at the cap, in zlib's thread pool, not on the event loop).
 *
 * `meter`, when given, is told each piece of the decoded body as it is produced (gzip: each
 * chunk zlib inflates; otherwise the whole body once) and may throw to stop the decoding
 * there: a bytes/s quota counts decompressed bytes as they appear, so concurrent gzip bodies
 * are stopped by the quota instead of each inflating to the cap first.
 */
export async function decodeBodyBytes(raw: Buffer, encoding: string | undefined, maxDecompressed: number, meter?: (bytes: number) => void): Promise<Buffer> {
  let bytes = raw;
  const enc = (encoding ?? 'identity').trim().toLowerCase();
  if (enc === 'gzip' || enc === 'x-gzip') {
    if (meter) return gunzipMetered(raw, maxDecompressed, meter);
    try {
      bytes = await gunzip(raw, { maxOutputLength: maxDecompressed });
    } catch (e: unknown) {
      if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) throw tooLarge(maxDecompressed);
      throw notGzip();
    }
  } else if (enc !== 'identity') {
    throw new SluiceError('SLUICE_ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Encoding "${enc}" is not supported; use gzip or none`, { field: 'Content-Encoding' });
  }
  if (bytes.length > maxDecompressed) {
    throw new SluiceError('SLUICE_ERR_BODY_TOO_LARGE', `the body is larger than ${maxDecompressed} bytes`, { field: 'body' });
  }
  meter?.(bytes.length);
  return bytes;
}

const tooLarge = (max: number) => new SluiceError('SLUICE_ERR_BODY_TOO_LARGE', `the body decompresses to more than ${max} bytes`, { field: 'body' });
const notGzip = () => new SluiceError('SLUICE_ERR_INVALID_ENCODING', 'the body is not valid gzip although Content-Encoding says gzip', { field: 'Content-Encoding' });

/** Inflates a gzip body chunk by chunk (zlib's thread pool), telling `meter` each chunk; stops at the first throw or past `max`. */
function gunzipMetered(raw: Buffer, max: number, meter: (bytes: number) => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const z = zlib.createGunzip();
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (e: unknown) => {
      z.destroy();
      reject(e);
    };
    z.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) return stop(tooLarge(max));
      try {
        meter(chunk.length);
      } catch (e: unknown) {
        return stop(e);
      }
      chunks.push(chunk);
    });
    z.on('error', () => reject(notGzip()));
    z.on('end', () => resolve(Buffer.concat(chunks, size)));
    z.end(raw);
  });
}

/** The `charset` parameter of a Content-Type header, lower-cased, or undefined. */
export function charsetOf(contentType: string | undefined): string | undefined {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? '');
  return m ? m[1]!.toLowerCase() : undefined;
}

/**
 * Turns body bytes into a JSON value: a declared charset must be UTF-8 (JSON is UTF-8,
 * RFC 8259 §8.1; anything else is 415 naming it), the bytes must be valid UTF-8, a leading
 * byte-order mark is ignored (§8.1 lets a parser ignore it; Windows tools write one), and
 * the text must be JSON whose every value is kept as sent (see json-faithful.ts: lone
 * surrogates, integers beyond 2^53 − 1 and numbers beyond a double are refused with their
 * JSON pointer).
 */
export function decodeJson(bytes: Buffer, contentType?: string): unknown {
  const charset = charsetOf(contentType);
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8' && charset !== 'us-ascii') {
    throw new SluiceError('SLUICE_ERR_UNSUPPORTED_MEDIA_TYPE', `the body is declared as charset=${charset}; sluice reads JSON as UTF-8 only: re-encode it as UTF-8 (or drop the charset)`, {
      field: 'Content-Type',
    });
  }
  // isUtf8 validates with SIMD; a fatal TextDecoder costs several times more per batch.
  if (!isUtf8(bytes)) throw new SluiceError('SLUICE_ERR_INVALID_ENCODING', 'the body is not valid UTF-8', { field: 'body' });
  const bom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  const text = bytes.toString('utf8', bom ? 3 : 0);
  if (text.length === 0) throw new SluiceError('SLUICE_ERR_INVALID_JSON', 'the body is empty; send a JSON event, array of events or { "batch": [...] }', { field: 'body' });
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (e: unknown) {
    throw new SluiceError('SLUICE_ERR_INVALID_JSON', `the body is not valid JSON: ${redactJsonError((e as Error).message)}`, { field: 'body' });
  }
  assertFaithful(text);
  return value;
}

/** decodeBodyBytes then decodeJson. */
export async function decodeJsonBody(raw: Buffer, encoding: string | undefined, maxDecompressed: number, contentType?: string): Promise<unknown> {
  return decodeJson(await decodeBodyBytes(raw, encoding, maxDecompressed), contentType);
}

/**
 * The events of an ingest body: an array, `{ "batch": [...], "sent_at"?: "…" }`, or a single
 * event. `sent_at` is the producer's clock when it sent the batch (RFC 3339): event times
 * are corrected for the producer's clock skew with it. A `sent_at` that is not RFC 3339
 * skips the correction, and each event carries it in `context.sluice.sent_at_unusable`.
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
    events = batch;
    if (sent_at !== undefined && sent_at !== null) {
      const t = typeof sent_at === 'string' ? parseRfc3339(sent_at) : null;
      // An unusable sent_at only skips skew correction; each event says so in context.sluice.
      if (t === null) events = batch.map((e) => flagContext(e, 'sent_at_unusable', sent_at));
      else sentAt = t;
    }
  } else if (body !== null && typeof body === 'object') events = [body];
  else throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'the body must be an event object, an array of events or { "batch": [...] }', { field: 'body' });
  if (events.length > maxEvents) {
    throw new SluiceError('SLUICE_ERR_TOO_MANY_EVENTS', `the batch has ${events.length} events; the limit is ${maxEvents}`, { field: 'batch' });
  }
  return sentAt === undefined ? { events } : { events, sentAt };
}
