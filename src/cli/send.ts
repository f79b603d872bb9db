import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import readline from 'node:readline';
import { postJson } from './http-client.js';
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
  const input = opts.file === '-' ? process.stdin : fs.createReadStream(opts.file);
  const total = opts.file === '-' ? null : fs.statSync(opts.file).size;
  const progress = new Progress(total);
  const summary: SendSummary = { sent: 0, accepted: 0, duplicates: 0, rejected: 0, invalidLines: 0 };
  const inFlight = new Set<Promise<void>>();
  const endpoint = `${opts.url.replace(/\/$/, '')}/v1/events`;
  let failure: Error | null = null;
  let bytesRead = 0;
  let lineNo = 0;

  const flush = (batch: unknown[], firstLine: number): void => {
    const p = postJson(endpoint, opts.key, batch, {
      onRetry: (reason, delay) => progress.note(`retrying batch at line ${firstLine} in ${delay} ms (${reason})`),
    }).then(
      (r) => {
        const b = r.body as { accepted: number; duplicates: number; rejected: { index: number; message: string; path: string }[] };
        summary.sent += batch.length;
        summary.accepted += b.accepted;
        summary.duplicates += b.duplicates;
        summary.rejected += b.rejected.length;
        for (const rej of b.rejected.slice(0, 3)) progress.note(`line ${firstLine + rej.index}: rejected at ${rej.path || '/'}: ${rej.message}`);
        progress.update(bytesRead, summary.sent);
      },
      (e: Error) => {
        failure ??= e;
      },
    );
    const tracked = p.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  let batch: unknown[] = [];
  let batchStart = 1;
  for await (const line of rl) {
    lineNo++;
    bytesRead += Buffer.byteLength(line) + 1;
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
    if (batch.length === 0) batchStart = lineNo;
    batch.push(event);
    if (batch.length >= opts.batchSize) {
      flush(batch, batchStart);
      batch = [];
      while (inFlight.size >= opts.concurrency) await Promise.race(inFlight);
    }
  }
  if (batch.length > 0 && !failure) flush(batch, batchStart);
  await Promise.all(inFlight);
  progress.done(summary.sent);
  if (failure) throw failure;
  return summary;
}
