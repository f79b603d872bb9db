import type { OutboxRow } from '../ports/alerts.js';

/** An outbox row as both catalogs store it. */
export interface OutboxDbRow {
  id: string;
  tenant: string;
  receiver: string;
  body: string;
  created_at: number;
  attempts: number;
  next_at: number;
  last_error: string | null;
  delivered_at: number | null;
}

export function toOutbox(r: OutboxDbRow): OutboxRow {
  return {
    id: r.id,
    tenant: r.tenant,
    receiver: r.receiver,
    body: typeof r.body === 'string' ? (JSON.parse(r.body) as unknown) : r.body,
    createdAt: Number(r.created_at),
    attempts: Number(r.attempts),
    nextAt: Number(r.next_at),
    lastError: r.last_error,
    deliveredAt: r.delivered_at === null ? null : Number(r.delivered_at),
  };
}

/**
 * Delivered notifications and failed attempts per tenant and receiver (a delivery's own
 * attempt is not a failure): those in the outbox plus the totals of those pruned from it.
 */
export const NOTIFICATION_COUNTS = `
  SELECT tenant, receiver, SUM(delivered) AS delivered, SUM(failed) AS failed FROM (
    SELECT tenant, receiver,
           CASE WHEN delivered_at IS NULL THEN 0 ELSE 1 END AS delivered,
           attempts - CASE WHEN delivered_at IS NULL THEN 0 ELSE 1 END AS failed
    FROM alert_outbox
    UNION ALL
    SELECT tenant, receiver, delivered, failed FROM alert_notification_totals
  ) c GROUP BY tenant, receiver ORDER BY tenant, receiver`;
