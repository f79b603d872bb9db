import { backoffDelay } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import { coerceError } from '../core/errors.js';
import type { AlertStore, OutboxRow } from '../ports/alerts.js';
import type { OutboxBody } from './notify.js';

/**
 * Delivering the outbox: each due notification's payloads are POSTed as JSON to its URL, in
 * order; a 2xx for every one marks it delivered, anything else (a refused connection, a
 * timeout, a non-2xx) records the failure and retries it later with exponential backoff and
 * full jitter (1 s doubling to 5 min). The outbox is in the catalog, so a notification queued
 * before a crash is delivered after the restart.
 *
 * Receivers are independent: each (tenant, receiver) has its own queue, sent oldest first
 * with one request in flight at a time, and up to MAX_RECEIVERS_IN_FLIGHT receivers are sent
 * to at once. A pass starts the receivers that have due notifications and nothing in flight,
 * and does not wait for them: a receiver that never answers holds only its own queue (for
 * its timeout), never another receiver's or another tenant's. A receiver whose notification
 * failed is not sent to again until that notification's retry is due (its backoff), and then
 * that one goes first: its notifications keep their order.
 *
 * Delivery is at least once: a crash between the receiver's answer and the mark (a few
 * milliseconds) sends it again after the restart. Receivers can tell a repeat by the
 * `Idempotency-Key` header (the notification's id), by Alertmanager's `groupKey` with the
 * same alerts, or by PagerDuty's `dedup_key`.
 */
export interface DeliverOptions {
  store: AlertStore;
  clock: Clock;
  /** Per request, ms (default 10 s). */
  timeoutMs?: number;
  fetch?: typeof fetch;
  /** Why a notification's URL must not be sent to (see receiver-address.ts), or null; checked before each send. */
  refusal?: (url: string) => Promise<string | null>;
  onResult?: (receiver: string, ok: boolean, tenant: string, failure?: DeliveryFailure) => void;
  /** A receiver's queue stopped on an error of the store (its notifications stay due). */
  onError?: (tenant: string, receiver: string, error: Error) => void;
  signal?: AbortSignal;
}

/** Why a notification was not delivered, and when it is retried. */
export interface DeliveryFailure {
  id: string;
  error: string;
  attempts: number;
  retryAt: number;
}

export const RETRY = { baseMs: 1_000, capMs: 300_000 } as const;
/** Receivers sent to at once. */
export const MAX_RECEIVERS_IN_FLIGHT = 16;
/** Due notifications read per pass: each receiver's oldest first, receivers interleaved (see AlertStore.dueNotifications). */
const DUE_PER_PASS = 500;

/**
 * The outbox's delivery, across passes: which receivers have a request in flight, and which
 * wait for a failed notification's retry. The `alerts.deliver` service keeps one.
 */
export class Deliverer {
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Per receiver that failed: when its failed notification is due again. */
  private readonly resumeAt = new Map<string, number>();
  private delivered = 0;
  private failed = 0;

  constructor(private readonly opts: DeliverOptions) {}

  /** Starts sending to every receiver that has due notifications and nothing in flight; does not wait for the answers. Returns how many receivers it started. */
  async pass(signal = this.opts.signal): Promise<number> {
    const now = this.opts.clock.now();
    const queues = new Map<string, OutboxRow[]>();
    for (const n of await this.opts.store.dueNotifications(now, DUE_PER_PASS)) {
      const key = `${n.tenant}\u0000${n.receiver}`;
      if (this.inFlight.has(key)) continue;
      const resume = this.resumeAt.get(key);
      if (resume !== undefined && resume > now) continue;
      const q = queues.get(key);
      if (q) q.push(n);
      else queues.set(key, [n]);
    }
    let started = 0;
    for (const [key, queue] of queues) {
      if (this.inFlight.size >= MAX_RECEIVERS_IN_FLIGHT || signal?.aborted) break;
      this.resumeAt.delete(key);
      const { tenant, receiver } = queue[0]!;
      const run = this.drain(key, queue, signal)
        .catch((e: unknown) => this.opts.onError?.(tenant, receiver, coerceError(e)))
        .finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, run);
      started++;
    }
    return started;
  }

  /** Waits until no request is in flight. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight.values()]);
  }

  /** Delivered and failed notifications since the last call. */
  takeCounts(): { delivered: number; failed: number } {
    const out = { delivered: this.delivered, failed: this.failed };
    this.delivered = 0;
    this.failed = 0;
    return out;
  }

  /** One receiver's due notifications, in order, one at a time; stops at the first failure (the rest wait for its retry). */
  private async drain(key: string, queue: OutboxRow[], signal: AbortSignal | undefined): Promise<void> {
    for (const n of queue) {
      if (signal?.aborted) return;
      const error = await this.send(n, signal);
      if (signal?.aborted) return; // stopping: the notification stays due, sent after the restart
      if (error === null) {
        await this.opts.store.markDelivered(n.id, this.opts.clock.now());
        this.delivered++;
        this.opts.onResult?.(n.receiver, true, n.tenant);
        continue;
      }
      const retryAt = this.opts.clock.now() + Math.max(RETRY.baseMs, backoffDelay(n.attempts, RETRY.baseMs, RETRY.capMs));
      await this.opts.store.markFailed(n.id, error, retryAt);
      this.failed++;
      this.resumeAt.set(key, retryAt);
      this.opts.onResult?.(n.receiver, false, n.tenant, { id: n.id, error, attempts: n.attempts + 1, retryAt });
      return;
    }
  }

  /** POSTs a notification's payloads in order: null when every one was answered 2xx, else why not. */
  private async send(n: OutboxRow, signal: AbortSignal | undefined): Promise<string | null> {
    const body = n.body as OutboxBody;
    const doFetch = this.opts.fetch ?? fetch;
    const refused = await this.opts.refusal?.(body.url);
    if (refused) return refused;
    try {
      for (const payload of body.payloads) {
        const timeout = AbortSignal.timeout(this.opts.timeoutMs ?? 10_000);
        const res = await doFetch(body.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'sluice-alerts', 'idempotency-key': n.id },
          body: JSON.stringify(payload),
          // Not followed: a redirect could lead where the receiver's own address was refused.
          redirect: 'manual',
          signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status < 200 || res.status >= 300) {
          return `${body.type} receiver "${n.receiver}" answered ${res.status}${res.status >= 300 && res.status < 400 ? ' (a redirect, which is not followed: give the receiver its final URL)' : ''}`;
        }
      }
      return null;
    } catch (e: unknown) {
      const err = coerceError(e);
      // fetch says "fetch failed" and keeps the reason (ECONNREFUSED, a timeout) in its cause.
      const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
      return err.name === 'TimeoutError' ? `${body.type} receiver "${n.receiver}" did not answer within ${this.opts.timeoutMs ?? 10_000} ms` : `${err.message}${cause}`;
    }
  }
}

/** One pass that waits for every answer: the notifications due now, delivered or failed. */
export async function deliverDue(opts: DeliverOptions): Promise<{ delivered: number; failed: number }> {
  const d = new Deliverer(opts);
  await d.pass();
  await d.idle();
  return d.takeCounts();
}

/**
 * How long a delivered notification stays in the outbox (ms): 120 h, Alertmanager's default
 * `--data.retention` for its notification log. Configurable as `alerts.outboxRetentionMs`.
 */
export const OUTBOX_RETENTION_MS = 120 * 3_600_000;
/** How often delivered notifications past their retention are pruned (ms). */
export const PRUNE_INTERVAL_MS = 10 * 60_000;
const PRUNE_BATCH = 1_000;

/**
 * Deletes the notifications delivered more than `retentionMs` before now, in batches of
 * 1,000 (each its own short transaction, so delivery and evaluation interleave). Those not
 * delivered yet stay, and are retried, however old. Returns how many were deleted.
 */
export async function pruneDelivered(store: AlertStore, clock: Clock, retentionMs: number, signal?: AbortSignal): Promise<number> {
  const before = clock.now() - retentionMs;
  let pruned = 0;
  for (;;) {
    const n = await store.pruneNotifications(before, PRUNE_BATCH);
    pruned += n;
    if (n < PRUNE_BATCH || signal?.aborted) return pruned;
  }
}
