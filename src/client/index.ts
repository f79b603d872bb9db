/**
 * The sluice producer SDK (`sluice/client`), for Node ≥ 20 and modern browsers: it uses only
 * `fetch`, `CompressionStream` and `crypto.randomUUID`.
 *
 *   const sluice = new SluiceClient({ url: 'https://sluice.example.com', writeKey });
 *   sluice.track('checkout', { amount: 12.5 }, { key: 'user-42' });
 *   await sluice.close();   // flushes what is buffered
 *
 * - Events are batched by count, bytes and time, and sent gzip-compressed.
 * - Each event gets its idempotency key when it is created, so a retried batch is counted
 *   once by the server, whatever happened to the previous attempt.
 * - A batch is retried with exponential backoff and full jitter on network errors, 5xx and
 *   429 (waiting at least what `Retry-After` says), never on other 4xx: those are reported to
 *   `onError` and the batch is dropped (`onDrop`, reason `rejected`).
 * - The buffer is bounded (`maxBufferEvents`). When it is full, `overflow: 'drop-oldest'`
 *   drops the oldest event (counted in `stats.dropped`, reported to `onDrop`), and
 *   `overflow: 'block'` makes `track` wait for room.
 * - One batch is in flight at a time, so a key's events arrive in order.
 *
 * `SluiceClient<Events>` takes a map from event type to properties (`sluice schema types`
 * generates one from the tenant's schemas) and checks `track` calls against it.
 */

export type EventMap = Record<string, Record<string, unknown>>;

export interface TrackedEvent {
  type: string;
  key?: string;
  ts: string;
  idempotency_key: string;
  properties: Record<string, unknown>;
  context?: Record<string, unknown>;
}

export type DropReason = 'overflow' | 'rejected' | 'failed' | 'closed';

export interface ClientOptions {
  /** The server, e.g. `http://127.0.0.1:8080`. */
  url: string;
  writeKey: string;
  /** Events per request (the server takes 1,000 at most). Default 500. */
  maxBatchEvents?: number;
  /** Bytes of JSON per request, before compression (the server takes 1 MiB). Default 512 KiB. */
  maxBatchBytes?: number;
  /** The longest an event waits in the buffer before it is sent. Default 1,000 ms. */
  flushIntervalMs?: number;
  /** Events held in memory at most. Default 10,000. */
  maxBufferEvents?: number;
  overflow?: 'drop-oldest' | 'block';
  /** Compress request bodies. Default true. */
  gzip?: boolean;
  /** Attempts of one batch before it is dropped (reason `failed`); 0 = retry for ever. Default 10. */
  maxAttempts?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** A batch was refused for good, or failed all its attempts. */
  onError?: (error: Error, events: readonly TrackedEvent[]) => void;
  /** Events that will not be delivered, and why. */
  onDrop?: (events: readonly TrackedEvent[], reason: DropReason) => void;
  /** Events the server refused one by one (bad field, schema), with its reasons. */
  onRejected?: (rejected: readonly { event: TrackedEvent; code: string; message: string; path: string }[]) => void;
  fetch?: typeof fetch;
}

export interface ClientStats {
  queued: number;
  sent: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  dropped: number;
  retries: number;
}

export class SluiceError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly code: string | null,
  ) {
    super(message);
    this.name = 'SluiceClientError';
  }
}

const encoder = new TextEncoder();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function newKey(): string {
  return globalThis.crypto.randomUUID();
}

async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export class SluiceClient<E extends EventMap = EventMap> {
  private readonly opts: Required<Omit<ClientOptions, 'onError' | 'onDrop' | 'onRejected' | 'fetch'>> & Pick<ClientOptions, 'onError' | 'onDrop' | 'onRejected'>;
  private readonly fetch: typeof fetch;
  private buffer: { event: TrackedEvent; bytes: number }[] = [];
  private bufferedBytes = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private sending: Promise<void> | null = null;
  private waiters: (() => void)[] = [];
  private closed = false;
  readonly stats: ClientStats = { queued: 0, sent: 0, accepted: 0, duplicates: 0, rejected: 0, dropped: 0, retries: 0 };

  constructor(options: ClientOptions) {
    if (!options.url || !options.writeKey) throw new TypeError('SluiceClient needs { url, writeKey }');
    this.opts = {
      url: options.url.replace(/\/$/, ''),
      writeKey: options.writeKey,
      maxBatchEvents: Math.min(1000, Math.max(1, options.maxBatchEvents ?? 500)),
      maxBatchBytes: options.maxBatchBytes ?? 512 * 1024,
      flushIntervalMs: options.flushIntervalMs ?? 1000,
      maxBufferEvents: Math.max(1, options.maxBufferEvents ?? 10_000),
      overflow: options.overflow ?? 'drop-oldest',
      gzip: options.gzip ?? true,
      maxAttempts: options.maxAttempts ?? 10,
      retryBaseMs: options.retryBaseMs ?? 100,
      retryMaxMs: options.retryMaxMs ?? 30_000,
      onError: options.onError,
      onDrop: options.onDrop,
      onRejected: options.onRejected,
    };
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /**
   * Buffers one event; it gets its idempotency key (unless given) and time now. Resolves once
   * buffered (with `overflow: 'block'`, once there is room), not when delivered: see `flush`.
   */
  async track<T extends keyof E & string>(
    type: T,
    properties?: E[T],
    options: { key?: string; ts?: Date | string; context?: Record<string, unknown>; idempotencyKey?: string } = {},
  ): Promise<TrackedEvent> {
    if (this.closed) throw new SluiceError('the client is closed', null, null);
    const event: TrackedEvent = {
      type,
      ts: options.ts === undefined ? new Date().toISOString() : typeof options.ts === 'string' ? options.ts : options.ts.toISOString(),
      idempotency_key: options.idempotencyKey ?? newKey(),
      properties: (properties ?? {}) as Record<string, unknown>,
    };
    if (options.key !== undefined) event.key = options.key;
    if (options.context !== undefined) event.context = options.context;
    while (this.buffer.length >= this.opts.maxBufferEvents) {
      if (this.opts.overflow === 'block') {
        this.kick();
        await new Promise<void>((r) => this.waiters.push(r));
        continue;
      }
      const dropped = this.buffer.shift()!;
      this.bufferedBytes -= dropped.bytes;
      this.stats.dropped++;
      this.opts.onDrop?.([dropped.event], 'overflow');
    }
    const bytes = encoder.encode(JSON.stringify(event)).length + 1;
    this.buffer.push({ event, bytes });
    this.bufferedBytes += bytes;
    this.stats.queued++;
    if (this.buffer.length >= this.opts.maxBatchEvents || this.bufferedBytes >= this.opts.maxBatchBytes) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.opts.flushIntervalMs);
    return event;
  }

  /** Sends everything buffered now; resolves when it is delivered or given up. */
  async flush(): Promise<void> {
    while (this.buffer.length > 0 || this.sending) {
      this.kick();
      await this.sending;
    }
  }

  /** Flushes and stops; later `track` calls throw. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.sending ??= this.drain().finally(() => {
      this.sending = null;
      if (this.buffer.length > 0 && !this.timer) this.timer = setTimeout(() => this.kick(), this.opts.flushIntervalMs);
    });
  }

  private async drain(): Promise<void> {
    while (this.buffer.length > 0) {
      let n = 0;
      let bytes = 0;
      while (n < this.buffer.length && n < this.opts.maxBatchEvents && (n === 0 || bytes + this.buffer[n]!.bytes <= this.opts.maxBatchBytes)) bytes += this.buffer[n++]!.bytes;
      const taken = this.buffer.splice(0, n);
      this.bufferedBytes -= bytes;
      for (const w of this.waiters.splice(0)) w();
      await this.send(taken.map((t) => t.event));
      if (this.buffer.length < this.opts.maxBatchEvents && this.bufferedBytes < this.opts.maxBatchBytes && !this.closed) break;
    }
  }

  /** One batch, retried as the header says; never throws. */
  private async send(events: TrackedEvent[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let retryAfterMs = 0;
      let error: SluiceError;
      try {
        const text = JSON.stringify({ batch: events, sent_at: new Date().toISOString() });
        const headers: Record<string, string> = { authorization: `Bearer ${this.opts.writeKey}`, 'content-type': 'application/json' };
        let body: string | Uint8Array = text;
        if (this.opts.gzip) {
          body = await gzip(text);
          headers['content-encoding'] = 'gzip';
        }
        const res = await this.fetch(`${this.opts.url}/v1/events`, { method: 'POST', headers, body: body as BodyInit });
        const answer = (await res.json().catch(() => null)) as {
          accepted?: number;
          duplicates?: number;
          rejected?: { index: number; code: string; message: string; path: string }[];
          code?: string;
          message?: string;
        } | null;
        if (res.ok) {
          this.stats.sent += events.length;
          this.stats.accepted += answer?.accepted ?? 0;
          this.stats.duplicates += answer?.duplicates ?? 0;
          const rejected = answer?.rejected ?? [];
          this.stats.rejected += rejected.length;
          if (rejected.length > 0) this.opts.onRejected?.(rejected.map((r) => ({ event: events[r.index]!, code: r.code, message: r.message, path: r.path })));
          return;
        }
        error = new SluiceError(`${res.status} ${answer?.code ?? ''}: ${answer?.message ?? res.statusText}`, res.status, answer?.code ?? null);
        if (res.status !== 429 && res.status < 500) {
          this.giveUp(error, events, 'rejected');
          return;
        }
        const ra = Number(res.headers.get('retry-after'));
        if (Number.isFinite(ra) && ra > 0) retryAfterMs = ra * 1000;
      } catch (e: unknown) {
        error = new SluiceError(`network error: ${(e as Error).message}`, null, null);
      }
      if (this.opts.maxAttempts > 0 && attempt >= this.opts.maxAttempts) {
        this.giveUp(error, events, 'failed');
        return;
      }
      this.stats.retries++;
      const backoff = Math.random() * Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** (attempt - 1));
      await sleep(Math.max(retryAfterMs, backoff));
    }
  }

  private giveUp(error: Error, events: TrackedEvent[], reason: DropReason): void {
    this.stats.dropped += events.length;
    this.opts.onError?.(error, events);
    this.opts.onDrop?.(events, reason);
  }
}
