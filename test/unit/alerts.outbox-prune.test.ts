import Database from 'better-sqlite3';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OUTBOX_RETENTION_MS, PRUNE_INTERVAL_MS } from '../../src/alerts/deliver.js';
import { alertServices } from '../../src/alerts/service.js';
import type { AlertSource } from '../../src/alerts/source.js';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import { ManualClock } from '../../src/core/clock.js';
import { tmpDir } from '../helpers/tmp.js';

const H = 3_600_000;

describe('the outbox is pruned on the injected clock', () => {
  it('outbox.delivered-notifications-past-retention-go-undelivered-ones-stay-and-the-counts-hold', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const file = path.join(tmpDir('sluice-alerts-prune-'), 'sluice.db');
    const catalog = new SqliteCatalog(file);
    const store = catalog.alerts;
    // What is in the outbox, read as another process would.
    const reader = new Database(file, { readonly: true });
    const outbox = () => (reader.prepare('SELECT id FROM alert_outbox ORDER BY id').all() as { id: string }[]).map((r) => r.id);
    const queue = async (id: string, delivered: boolean) => {
      await store.saveEvaluation({ tenant: 'acme', states: [], transitions: [], notifications: [{ id, receiver: 'oncall', body: { id }, nextAt: clock.now() }], objects: [] });
      await store.markFailed(id, 'connection refused', clock.now() + 1_000);
      if (delivered) await store.markDelivered(id, clock.now());
    };
    // No tenants, no rules: the services hold the lease and prune (evaluation and delivery rarely run).
    const source: AlertSource = { watermark: async () => clock.now(), counts: async () => new Map(), ruleData: async () => ({}) };
    const services = alertServices({ store, source, clock, evaluateIntervalMs: 24 * H, deliverIntervalMs: 24 * H, leaseTtlMs: 30 * 60_000, externalUrl: '', tenants: async () => [], outboxRetentionMs: OUTBOX_RETENTION_MS });
    const abort = new AbortController();
    for (const s of services) s.start(abort.signal);

    await queue('a-sent-early', true);
    await queue('z-never-sent', false); // its receiver keeps failing
    await clock.advance(100 * H);
    await queue('b-sent-later', true);
    // The undelivered one is retried by the delivery service (no URL: it fails each time), so its failures only grow.
    let failed = 0;
    const countsHold = async () => {
      const [c] = await store.notificationCounts();
      expect(c).toMatchObject({ tenant: 'acme', receiver: 'oncall', delivered: 2 });
      expect(c!.failed).toBeGreaterThanOrEqual(failed);
      failed = c!.failed;
    };
    await countsHold();
    await clock.advance(20 * H - PRUNE_INTERVAL_MS);
    expect(outbox()).toEqual(['a-sent-early', 'b-sent-later', 'z-never-sent']);

    // The first run past 120 h after the early delivery prunes it; the rest stays.
    await clock.advance(2 * PRUNE_INTERVAL_MS);
    expect(outbox()).toEqual(['b-sent-later', 'z-never-sent']);
    await countsHold();

    // 120 h after the later one, it goes too; the undelivered one stays, due, however old.
    await clock.advance(100 * H + PRUNE_INTERVAL_MS);
    expect(outbox()).toEqual(['z-never-sent']);
    await clock.advance(2 * 24 * H);
    expect(outbox()).toEqual(['z-never-sent']);
    expect((await store.dueNotifications(clock.now(), 10)).map((r) => r.id)).toEqual(['z-never-sent']);
    await countsHold();
    for (const s of services) await s.stop();
    reader.close();
    await catalog.close();
  });
});
