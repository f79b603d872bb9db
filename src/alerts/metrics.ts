import type { IngestMetrics } from '../obs/metrics.js';
import type { AlertStore } from '../ports/alerts.js';
import type { AlertState } from './state.js';

/**
 * Sets the alert metrics from the catalog at scrape time: `sluice_alerts` (one series per
 * alert, 1 in its current state) and `sluice_alert_notifications_total` from the outbox,
 * which keeps every notification, so the counters hold across restarts and across processes.
 */
export async function refreshAlertMetrics(m: Pick<IngestMetrics, 'alerts' | 'notifications'>, store: AlertStore): Promise<void> {
  const [states, counts] = await Promise.all([store.states(null), store.notificationCounts()]);
  m.alerts.reset();
  for (const s of states) {
    const a = s.body as AlertState;
    m.alerts.set({ tenant: a.tenant, alertname: a.rule, severity: a.severity, state: a.state }, 1);
  }
  m.notifications.reset();
  for (const c of counts) {
    m.notifications.inc({ tenant: c.tenant, receiver: c.receiver, result: 'sent' }, c.delivered);
    m.notifications.inc({ tenant: c.tenant, receiver: c.receiver, result: 'failed' }, c.failed);
  }
}
