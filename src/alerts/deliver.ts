import { backoffDelay } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import { coerceError } from '../core/errors.js';
import type { AlertStore } from '../ports/alerts.js';
import type { OutboxBody } from './notify.js';

/**
 * Delivering the outbox: each due notification's payloads are POSTed as JSON to its URL, in
 * order; a 2xx for every one marks it delivered, anything else (a refused connection, a
 * timeout, a non-2xx) records the failure and retries it later with exponential backoff and
 * full jitter (1 s doubling to 5 min). The outbox is in the catalog, so a notification queued
 * before a crash is delivered after the restart.
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
  onResult?: (receiver: string, ok: boolean, tenant: string) => void;
  signal?: AbortSignal;
}

export const RETRY = { baseMs: 1_000, capMs: 300_000 } as const;

export async function deliverDue(opts: DeliverOptions): Promise<{ delivered: number; failed: number }> {
  const doFetch = opts.fetch ?? fetch;
  let delivered = 0;
  let failed = 0;
  for (const n of await opts.store.dueNotifications(opts.clock.now(), 100)) {
    if (opts.signal?.aborted) break;
    const body = n.body as OutboxBody;
    try {
      for (const payload of body.payloads) {
        const res = await doFetch(body.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'sluice-alerts', 'idempotency-key': n.id },
          body: JSON.stringify(payload),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status < 200 || res.status >= 300) throw new Error(`${body.type} receiver "${n.receiver}" answered ${res.status}`);
      }
      await opts.store.markDelivered(n.id, opts.clock.now());
      delivered++;
      opts.onResult?.(n.receiver, true, n.tenant);
    } catch (e: unknown) {
      const message = coerceError(e).message;
      await opts.store.markFailed(n.id, message, opts.clock.now() + Math.max(RETRY.baseMs, backoffDelay(n.attempts, RETRY.baseMs, RETRY.capMs)));
      failed++;
      opts.onResult?.(n.receiver, false, n.tenant);
    }
  }
  return { delivered, failed };
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
