import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import readline from 'node:readline';
import { SluiceError } from '../core/errors.js';
import { HttpError, postJson } from './http-client.js';
import { Progress } from './progress.js';

export interface SendOptions {
  url: string;
  key: string;
  file: string;
  batchSize: number;
  concurrency: number;
}

export interface SendSummary {
  sent: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  invalidLines: number;
}

/**
 * `sluice send`: reads NDJSON (one event per line), sends it in batches, several in flight,
 * retrying each batch until it is acknowledged. Every event gets its idempotency key when it
 * is read (unless it has one), so a retried batch carries the same keys and is never counted
 * twice. Memory is bounded by batchSize × concurrency whatever the file's size.
 */
export async function send(opts: SendOptions): Promise<SendSummary> {
  let total: number | null = null;
  if (opts.file !== '-') {
    try {
      total = fs.statSync(opts.file).size;
    } catch (e: unknown) {
      const why = (e as { code?: string }).code === 'ENOENT' ? 'no such file' : (e as Error).message;
      throw new SluiceError('SLUICE_ERR_CONFIG', `cannot read ${opts.file}: ${why} (name an NDJSON file, one event per line, or - for standard input)`);
    }
  }
  const input = opts.file === '-' ? process.stdin : fs.createReadStream(opts.file);
  const progress = new Progress(total);
  const summary: SendSummary = { sent: 0, accepted: 0, duplicates: 0, rejected: 0, invalidLines: 0 };
  const inFlight = new Set<Promise<void>>();
  const endpoint = `${opts.url.replace(/\/$/, '')}/v1/events`;
  let failure: Error | null = null;
  // Progress is what the server acknowledged: the bytes of the lines of acknowledged batches.
  let bytesAcked = 0;
  let lineNo = 0;

  /** `lines[i]` is the line number of `batch[i]` (blank and invalid lines are skipped, not sent). */
  const flush = (batch: unknown[], lines: number[], bytes: number): void => {
    const p = postJson(endpoint, opts.key, batch, {
      onRetry: (reason, delay) => progress.note(`retrying the batch of lines ${lines[0]}-${lines.at(-1)} in ${delay} ms (${reason})`),
    }).then(
      (r) => {
        const b = r.body as { accepted: number; duplicates: number; rejected: { index: number; message: string; path: string }[] };
        summary.sent += batch.length;
        summary.accepted += b.accepted;
        summary.duplicates += b.duplicates;
        summary.rejected += b.rejected.length;
        for (const rej of b.rejected.slice(0, 3)) progress.note(`line ${lines[rej.index]}: rejected at ${rej.path || '/'}: ${rej.message}`);
        bytesAcked += bytes;
        progress.update(bytesAcked, summary.sent);
      },
      (e: Error) => {
        // A batch over the server's body limit (large events), or holding an event over its
        // event limit: sent again as two halves, with the same idempotency keys, down to single
        // events; a single event refused so is a rejected line, and the rest of the file is sent.
        if (e instanceof HttpError && e.status === 413) {
          if (batch.length === 1) {
            summary.sent += 1;
            summary.rejected += 1;
            progress.note(`line ${lines[0]}: rejected: ${e.message}`);
            bytesAcked += bytes;
            progress.update(bytesAcked, summary.sent);
            return;
          }
          const half = Math.ceil(batch.length / 2);
          const why =
            (e.body as { code?: string } | null)?.code === 'SLUICE_ERR_EVENT_TOO_LARGE'
              ? `an event of the batch of lines ${lines[0]}-${lines.at(-1)} is over the server's event size limit; sending it in two halves to find it`
              : `the batch of lines ${lines[0]}-${lines.at(-1)} is over the server's body limit; sending it in two halves (a smaller --batch avoids this)`;
          progress.note(why);
          flush(batch.slice(0, half), lines.slice(0, half), 0);
          flush(batch.slice(half), lines.slice(half), bytes);
          return;
        }
        failure ??= e;
      },
    );
    const tracked = p.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  let batch: unknown[] = [];
  let lines: number[] = [];
  let bytes = 0;
  for await (const line of rl) {
    lineNo++;
    bytes += Buffer.byteLength(line) + 1;
    if (failure) break;
    if (line.trim() === '') continue;
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch {
      summary.invalidLines++;
      progress.note(`line ${lineNo}: not valid JSON; skipped`);
      continue;
    }
    if (event && typeof event === 'object' && !Array.isArray(event) && !('idempotency_key' in event)) {
      (event as Record<string, unknown>).idempotency_key = randomUUID();
    }
    batch.push(event);
    lines.push(lineNo);
    if (batch.length >= opts.batchSize) {
      flush(batch, lines, bytes);
      batch = [];
      lines = [];
      bytes = 0;
      while (inFlight.size >= opts.concurrency) await Promise.race(inFlight);
    }
  }
  if (batch.length > 0 && !failure) flush(batch, lines, bytes);
  // A batch split in halves adds its halves while it settles: wait until none is left.
  while (inFlight.size > 0) await Promise.all(inFlight);
  if (failure) throw failure;
  progress.done(summary.sent);
  return summary;
}
