import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../src/core/errors.js';
import type { DeadLetter, LogRecord } from '../../src/core/types.js';
import type { Catalog } from '../../src/ports/catalog.js';
import type { CellState } from '../../src/ports/view-diff.js';
import { entry } from '../helpers/entries.js';

/**
 * The Catalog conformance suite: tenants, keys, settings, the audit log, schemas and dead
 * letters. `make` returns a connected, empty catalog; `another` opens a second one on the
 * same data, as another process would.
 */
export interface CatalogHarness {
  catalog: Catalog;
  another(): Promise<Catalog>;
}

function code(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'resolved',
    (e: unknown) => (e instanceof SluiceError ? `${e.code}${e.field ? `:${e.field}` : ''}` : String(e)),
  );
}

function dead(tenant: string, n: number, overrides: Partial<DeadLetter> = {}, record: Partial<LogRecord> = {}): DeadLetter {
  return {
    record: { ...entry(tenant, n, 1), partition: 0, offset: n, attempt: 3, ...record },
    reason: 'schema_violation',
    message: `"amount" must be >= 0, got -${n}`,
    path: '/properties/amount',
    schemaVersion: 2,
    ...overrides,
  };
}

const schema = (required: string[]) => ({ type: 'object', required, properties: Object.fromEntries(required.map((r) => [r, { type: 'number' }])) });

export function catalogConformance(name: string, make: () => Promise<CatalogHarness>): void {
  describe(`Catalog conformance: ${name}`, () => {
    it('tenants.are-created-once-with-valid-names', async () => {
      const { catalog } = await make();
      const t = await catalog.createTenant('acme');
      expect(t.tenant).toBe('acme');
      expect(await code(catalog.createTenant('acme'))).toBe('SLUICE_ERR_INVALID_BODY:name');
      expect(await code(catalog.createTenant('Not Valid'))).toBe('SLUICE_ERR_INVALID_BODY:name');
      await catalog.createTenant('beta');
      expect((await catalog.listTenants()).map((x) => x.name)).toEqual(['acme', 'beta']);
      expect((await catalog.getTenant('acme'))?.createdAt).toBeGreaterThan(0);
      expect(await catalog.getTenant('nobody')).toBeNull();
    });

    it('keys.verify-by-scope-refuse-anything-else-and-revoke-across-processes', async () => {
      const { catalog, another } = await make();
      const t = await catalog.createTenant('acme');
      expect(await catalog.verifyKey(t.writeKey)).toMatchObject({ tenant: 'acme', scope: 'write' });
      expect(await catalog.verifyKey(t.readKey)).toMatchObject({ tenant: 'acme', scope: 'read' });
      expect(await catalog.verifyKey(t.adminKey)).toMatchObject({ tenant: 'acme', scope: 'admin' });
      // A changed secret, a changed scope letter, garbage: all unknown.
      const last = t.writeKey.at(-1) === 'A' ? 'B' : 'A';
      expect(await catalog.verifyKey(t.writeKey.slice(0, -1) + last)).toBeNull();
      expect(await catalog.verifyKey(t.writeKey.replace('sluice_w_', 'sluice_a_'))).toBeNull();
      expect(await catalog.verifyKey("sluice_w_' OR 1=1 --")).toBeNull();
      expect(await catalog.verifyKey('')).toBeNull();

      // Another process sees a key made here at once, and a revocation made there.
      const other = await another();
      try {
        const schemaKey = await catalog.createKey('acme', 'schema', 'payments');
        expect(await other.verifyKey(schemaKey)).toMatchObject({ tenant: 'acme', scope: 'schema', team: 'payments' });
        const id = t.writeKey.split('_')[2]!;
        expect(await other.revokeKey(id)).toBe(true);
        expect(await other.revokeKey(id)).toBe(false);
        expect(await other.verifyKey(t.writeKey)).toBeNull();
      } finally {
        await other.close();
      }
      expect(await code(catalog.createKey('acme', 'schema'))).toBe('SLUICE_ERR_INVALID_BODY:team');
      expect(await code(catalog.createKey('acme', 'read', 'payments'))).toBe('SLUICE_ERR_INVALID_BODY:team');
      expect(await code(catalog.createKey('nobody', 'read'))).toBe('SLUICE_ERR_NOT_FOUND:tenant');
      expect((await catalog.auditLog('acme', 10)).map((a) => a.action)).toEqual(['key.create']);
    });

    it('settings.default-merge-move-the-epoch-and-are-audited', async () => {
      const { catalog, another } = await make();
      await catalog.createTenant('acme');
      expect(await catalog.settings('acme')).toEqual({ unknownTypes: 'accept', quota: {}, paused: null });
      expect(await code(catalog.settings('nobody'))).toBe('SLUICE_ERR_NOT_FOUND:tenant');
      const before = await catalog.epoch();
      const after = await catalog.updateSettings('acme', { quota: { eventsPerSecond: 50 } }, 'key:abc');
      expect(after).toEqual({ unknownTypes: 'accept', quota: { eventsPerSecond: 50 }, paused: null });
      await catalog.updateSettings('acme', { unknownTypes: 'reject' }, 'cli');
      const other = await another();
      try {
        expect(await other.epoch()).toBe(before + 2);
        expect(await other.settings('acme')).toEqual({ unknownTypes: 'reject', quota: { eventsPerSecond: 50 }, paused: null });
      } finally {
        await other.close();
      }
      const log = await catalog.auditLog('acme', 10);
      expect(log.map((a) => [a.action, a.actor])).toEqual([['tenant.settings', 'cli'], ['tenant.settings', 'key:abc']]);
      expect(log[1]!.detail).toMatchObject({ before: { quota: {} }, after: { quota: { eventsPerSecond: 50 } } });
      expect(await code(catalog.updateSettings('nobody', { unknownTypes: 'reject' }, 'cli'))).toBe('SLUICE_ERR_NOT_FOUND:tenant');
    });

    it('audit.lists-newest-first-per-tenant-and-subject', async () => {
      const { catalog } = await make();
      for (let i = 0; i < 5; i++) await catalog.audit({ tenant: i % 2 ? 'a' : 'b', actor: 'cli', action: 'x', subject: `s${i % 3}`, detail: { i } });
      expect((await catalog.auditLog('a', 10)).map((e) => e.detail)).toEqual([{ i: 3 }, { i: 1 }]);
      expect((await catalog.auditLog('b', 1)).map((e) => e.detail)).toEqual([{ i: 4 }]);
      expect((await catalog.auditLog('b', 10, 's0')).map((e) => e.detail)).toEqual([{ i: 0 }]);
      const [e] = await catalog.auditLog('a', 1);
      expect(e).toMatchObject({ tenant: 'a', actor: 'cli', action: 'x', subject: 's0' });
      expect(e!.at).toBeGreaterThan(0);
    });

    it('schemas.publish-compare-and-set-on-the-version', async () => {
      const { catalog, another } = await make();
      const epoch = await catalog.epoch();
      const v1 = await catalog.schemas.publish('acme', 'order', { schema: schema(['amount']), owner: 'shop', actor: 'k1', expectedVersion: 0, diff: [] });
      expect(v1).toMatchObject({ tenant: 'acme', type: 'order', version: 1, owner: 'shop', createdBy: 'k1', forcedReason: null });
      expect(await code(catalog.schemas.publish('acme', 'order', { schema: schema([]), owner: 'shop', actor: 'k1', expectedVersion: 0, diff: [] }))).toBe(
        'SLUICE_ERR_CONFLICT:expected_version',
      );
      await catalog.schemas.publish('acme', 'order', { schema: schema(['amount', 'tax']), owner: 'shop', actor: 'k2', expectedVersion: 1, diff: ['x'], forcedReason: 'migration' });
      await catalog.schemas.publish('acme', 'refund', { schema: schema([]), owner: 'shop', actor: 'k1', expectedVersion: 0, diff: [] });
      await catalog.schemas.publish('other', 'order', { schema: schema([]), owner: 'x', actor: 'k9', expectedVersion: 0, diff: [] });
      expect((await catalog.schemas.list('acme')).map((s) => [s.type, s.version])).toEqual([['order', 2], ['refund', 1]]);
      expect((await catalog.schemas.versions('acme', 'order')).map((s) => s.version)).toEqual([1, 2]);
      expect((await catalog.schemas.latest('acme', 'order'))?.schema).toEqual(schema(['amount', 'tax']));
      expect((await catalog.schemas.latest('acme', 'order'))?.forcedReason).toBe('migration');
      expect(await catalog.schemas.latest('acme', 'nothing')).toBeNull();
      expect(await catalog.epoch()).toBe(epoch + 4);
      expect((await catalog.auditLog('acme', 10, 'order'))[0]).toMatchObject({ action: 'schema.publish', actor: 'k2', detail: { version: 2, forced_reason: 'migration', diff: ['x'] } });

      // Two processes publishing the same version at once: exactly one wins.
      const other = await another();
      try {
        const race = await Promise.all(
          [catalog, other].map((c, i) => code(c.schemas.publish('acme', 'race', { schema: schema([]), owner: 'o', actor: `k${i}`, expectedVersion: 0, diff: [] }))),
        );
        expect(race.sort()).toEqual(['SLUICE_ERR_CONFLICT:expected_version', 'resolved']);
        expect((await catalog.schemas.versions('acme', 'race')).length).toBe(1);
      } finally {
        await other.close();
      }
    });

    it('dead-letters.upsert-page-group-and-count-per-tenant', async () => {
      const { catalog } = await make();
      const dlq = catalog.deadLetters;
      await dlq.record(Array.from({ length: 25 }, (_, i) => dead('acme', i, i % 5 === 0 ? { reason: 'too_late', message: 'too late by 3 days', path: '' } : {})));
      await dlq.record([dead('other', 1)]);
      // The same key again (a redelivery): one entry, its attempts kept at the highest.
      await dlq.record([dead('acme', 1, {}, { attempt: 1 }), dead('acme', 1, {}, { attempt: 2 })]);
      expect(await dlq.counts('acme')).toEqual({ schema_violation: 20, too_late: 5 });
      const one = await dlq.get('acme', 'k-1');
      expect(one).toMatchObject({ tenant: 'acme', type: 'checkout', reason: 'schema_violation', path: '/properties/amount', schemaVersion: 2, status: 'open', attempts: 3, replays: 0 });
      expect(JSON.parse(one!.payload)).toMatchObject({ type: 'checkout', idempotency_key: 'k-1', properties: { amount: 1 } });
      expect(await dlq.get('other', 'k-2')).toBeNull();

      // Pages: every entry once, newest first, other tenants never.
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await dlq.list('acme', {}, 7, cursor);
        expect(page.entries.length).toBeLessThanOrEqual(7);
        seen.push(...page.entries.map((e) => e.idempotencyKey));
        cursor = page.cursor;
      } while (cursor);
      expect(seen.sort()).toEqual(Array.from({ length: 25 }, (_, i) => `k-${i}`).sort());
      expect((await dlq.list('acme', { reason: 'too_late' }, 100)).entries.length).toBe(5);
      expect((await dlq.list('acme', { ids: ['k-0', 'k-1', 'k-404'] }, 100)).entries.map((e) => e.idempotencyKey).sort()).toEqual(['k-0', 'k-1']);
      expect(await code(dlq.list('acme', {}, 10, 'bm90IGEgY3Vyc29y'))).toBe('SLUICE_ERR_INVALID_QUERY:cursor');

      const groups = await dlq.groups('acme', {}, 10);
      expect(groups.map((g) => [g.reason, g.count, g.path, g.types])).toEqual([
        ['schema_violation', 20, '/properties/amount', ['checkout']],
        ['too_late', 5, '', ['checkout']],
      ]);
      expect(groups[0]!.template).toBe('"…" must be >= N, got N');
      expect(groups[0]!.samples).toHaveLength(3);

      const minute = one!.receivedAt - (one!.receivedAt % 60_000);
      const byMinute = await dlq.byMinute(minute - 60_000, minute + 120_000);
      expect(byMinute.filter((m) => m.tenant === 'acme').reduce((s, m) => s + m.n, 0)).toBe(25);
    });

    it('dead-letters.replay-generations-refail-and-discard', async () => {
      const { catalog } = await make();
      const dlq = catalog.deadLetters;
      await dlq.record([dead('acme', 1), dead('acme', 2), dead('acme', 3)]);
      expect(await dlq.markReplayed('acme', [{ idempotencyKey: 'k-1', generation: 1 }, { idempotencyKey: 'k-2', generation: 2 }])).toEqual([true, false]);
      expect(await dlq.markReplayed('acme', [{ idempotencyKey: 'k-1', generation: 1 }])).toEqual([false]);
      expect(await dlq.get('acme', 'k-1')).toMatchObject({ status: 'replayed', replays: 1 });
      // A late failure of the first generation does not reopen it; one of the replay does.
      await dlq.record([dead('acme', 1, { reason: 'poison' }, { replay: 0 })]);
      expect(await dlq.get('acme', 'k-1')).toMatchObject({ status: 'replayed', reason: 'schema_violation' });
      await dlq.record([dead('acme', 1, { reason: 'poison', message: 'crashed', path: '' }, { replay: 1 })]);
      expect(await dlq.get('acme', 'k-1')).toMatchObject({ status: 'open', reason: 'poison', replays: 1 });
      expect((await dlq.byMinute(0, Date.now() + 60_000)).reduce((s, m) => s + m.n, 0)).toBe(3);

      await dlq.refail('acme', [{ idempotencyKey: 'k-2', fault: { reason: 'schema_violation', message: 'still bad', path: '/properties/x', schemaVersion: 3 } }]);
      expect(await dlq.get('acme', 'k-2')).toMatchObject({ status: 'open', message: 'still bad', path: '/properties/x', schemaVersion: 3 });

      await dlq.record([dead('acme', 4)], 'held');
      const held = await dlq.get('acme', 'k-4');
      expect(held).toMatchObject({ status: 'held' });
      await new Promise((r) => setTimeout(r, 5));
      expect(await dlq.discard('acme', { ids: ['k-2', 'k-4'] }, 100)).toBe(2);
      // A discard is not a failure seen again: when it was last seen stays.
      expect((await dlq.get('acme', 'k-4'))!.lastSeen).toBe(held!.lastSeen);
      expect(await dlq.discard('acme', { ids: ['k-2'] }, 100)).toBe(0);
      // A discarded entry stays discarded whatever arrives later.
      await dlq.record([dead('acme', 2, {}, { replay: 5 })]);
      expect(await dlq.get('acme', 'k-2')).toMatchObject({ status: 'discarded' });
      expect(await dlq.counts('acme')).toEqual({ poison: 1, schema_violation: 1 });
      expect((await dlq.list('acme', { status: ['discarded'] }, 10)).entries.map((e) => e.idempotencyKey).sort()).toEqual(['k-2', 'k-4']);
    });

    it('saved-queries.are-per-tenant-audited-and-survive-another-process', async () => {
      const { catalog, another } = await make();
      await catalog.createTenant('acme');
      await catalog.createTenant('beta');
      const sq = catalog.savedQueries;
      const query = { event: 'checkout', measures: ['count', 'sum:properties.amount'], group_by: ['properties.region'], interval: '1h', from: '-24h' };
      const a = await sq.create('acme', { name: 'Checkouts by region', query }, 'key-1', 200);
      expect(a).toMatchObject({ tenant: 'acme', name: 'Checkouts by region', query, createdBy: 'key-1' });
      expect(a.id).toMatch(/^[0-9a-f]{16}$/);
      const b = await sq.create('acme', { name: 'All events', query: { interval: '1d' } }, 'key-1', 200);
      expect((await sq.list('acme')).map((q) => q.name)).toEqual(['All events', 'Checkouts by region']);
      // The tenant's limit is counted with the insert: at 2, a third is refused and nothing is written.
      await expect(sq.create('acme', { name: 'Third', query: { interval: '1d' } }, 'key-1', 2)).rejects.toMatchObject({ code: 'SLUICE_ERR_CONFLICT', field: 'saved_queries' });
      expect(await sq.list('acme')).toHaveLength(2);

      // Another tenant sees none of them, and cannot read, change or delete them by id.
      expect(await sq.list('beta')).toEqual([]);
      expect(await sq.get('beta', a.id)).toBeNull();
      expect(await sq.update('beta', a.id, { name: 'mine now', query: {} }, 'key-2')).toBeNull();
      expect(await sq.remove('beta', a.id, 'key-2')).toBe(false);

      const other = await another();
      try {
        expect(await other.savedQueries.get('acme', a.id)).toEqual(a);
        const changed = await other.savedQueries.update('acme', a.id, { name: 'Checkouts', query: { ...query, interval: '1d' } }, 'key-3');
        expect(changed).toMatchObject({ id: a.id, name: 'Checkouts', query: { interval: '1d' }, createdAt: a.createdAt, createdBy: 'key-1' });
        expect(changed!.updatedAt).toBeGreaterThanOrEqual(a.updatedAt);
      } finally {
        await other.close();
      }
      expect(await sq.remove('acme', b.id, 'key-1')).toBe(true);
      expect(await sq.remove('acme', b.id, 'key-1')).toBe(false);
      expect(await sq.get('acme', b.id)).toBeNull();
      expect((await sq.list('acme')).map((q) => q.id)).toEqual([a.id]);
      expect((await catalog.auditLog('acme', 10)).map((e) => `${e.action} ${e.subject} ${e.actor}`)).toEqual([
        `saved_query.delete ${b.id} key-1`,
        `saved_query.update ${a.id} key-3`,
        `saved_query.create ${b.id} key-1`,
        `saved_query.create ${a.id} key-1`,
      ]);
      expect(await catalog.auditLog('beta', 10)).toEqual([]);
    });

    it('keys.are-listed-without-secrets-with-last-use-and-revocation', async () => {
      const { catalog } = await make();
      const t = await catalog.createTenant('acme');
      await catalog.createTenant('beta');
      const before = Date.now();
      expect(await catalog.verifyKey(t.readKey)).toMatchObject({ scope: 'read' });
      const schemaKey = await catalog.createKey('acme', 'schema', 'payments', 'admin-key-id');
      const id = (k: string) => k.split('_')[2]!;
      expect(await catalog.revokeKey(id(t.writeKey))).toBe(true);
      const keys = await catalog.listKeys('acme');
      const byId = (a: unknown[], b: unknown[]) => String(a[0]).localeCompare(String(b[0]));
      expect(keys.map((k) => [k.id, k.scope, k.team, k.revokedAt !== null]).sort(byId)).toEqual(
        [
          [id(t.writeKey), 'write', null, true],
          [id(t.readKey), 'read', null, false],
          [id(t.adminKey), 'admin', null, false],
          [id(schemaKey), 'schema', 'payments', false],
        ].sort(byId),
      );
      expect(keys.at(-1)!.id).toBe(id(schemaKey));
      // A key's use is written down (at most once a minute); an unused key has none.
      await expect.poll(async () => (await catalog.listKeys('acme')).find((k) => k.id === id(t.readKey))?.lastUsedAt ?? 0).toBeGreaterThanOrEqual(before);
      expect((await catalog.listKeys('acme')).find((k) => k.id === id(t.adminKey))?.lastUsedAt).toBeNull();
      // Nothing in a listing is a secret, and another tenant's keys are not listed.
      expect(JSON.stringify(keys)).not.toContain(t.readKey.split('_').slice(3).join('_'));
      expect(JSON.stringify(keys)).not.toContain('hash');
      expect(await catalog.listKeys('beta')).toHaveLength(3);
      expect(await catalog.listKeys('nobody')).toEqual([]);
      expect((await catalog.auditLog('acme', 1))[0]).toMatchObject({ action: 'key.create', actor: 'admin-key-id' });
    });

    it('alerts.rules-are-put-listed-deleted-and-audited', async () => {
      const { catalog, another } = await make();
      await catalog.createTenant('acme');
      const a = catalog.alerts;
      const body = { kind: 'slo', objective: 0.99 };
      expect((await a.putRule('acme', 'errors', body, 'key-1')).created).toBe(true);
      const again = await a.putRule('acme', 'errors', { ...body, objective: 0.999 }, 'key-1');
      expect(again.created).toBe(false);
      expect(again.rule.createdAt).toBeLessThanOrEqual(again.rule.updatedAt);
      await a.putRule('beta', 'other', body, 'key-2');
      const other = await another();
      expect((await other.alerts.getRule('acme', 'errors'))?.body).toEqual({ kind: 'slo', objective: 0.999 });
      expect((await a.listRules('acme')).map((r) => r.name)).toEqual(['errors']);
      expect((await a.listRules(null)).map((r) => `${r.tenant}/${r.name}`)).toEqual(['acme/errors', 'beta/other']);
      expect(await a.getRule('acme', 'nope')).toBeNull();
      await a.saveEvaluation({ tenant: 'acme', states: [{ rule: 'errors', severity: 'page', body: { state: 'firing' } }], transitions: [], notifications: [], objects: [] });
      expect(await a.deleteRule('acme', 'errors', 'key-1')).toBe(true);
      expect(await a.deleteRule('acme', 'errors', 'key-1')).toBe(false);
      expect(await a.states('acme')).toEqual([]);
      expect((await catalog.auditLog('acme', 10)).map((e) => e.action)).toEqual(['alert.rule.delete', 'alert.rule.put', 'alert.rule.put']);
    });

    it('alerts.an-evaluation-writes-states-history-and-queues-each-notification-once', async () => {
      const { catalog, another } = await make();
      const a = catalog.alerts;
      const write = {
        tenant: 'acme',
        states: [
          { rule: 'errors', severity: 'page', body: { state: 'firing', n: 1 } },
          { rule: 'errors', severity: 'ticket', body: { state: 'pending' } },
        ],
        transitions: [
          { rule: 'errors', severity: 'page', at: 120_000, body: { from: 'inactive', to: 'firing' } },
          { rule: 'errors', severity: 'ticket', at: 60_000, body: { from: 'inactive', to: 'pending' } },
        ],
        notifications: [{ id: 'n-1', receiver: 'oncall', body: { status: 'firing' }, nextAt: 1_000 }],
        objects: [{ kind: 'group' as const, name: 'g1', body: { sent: ['x'] } }],
      };
      await a.saveEvaluation(write);
      // The same notification id again (an evaluation retried after a crash): still one.
      await a.saveEvaluation({ ...write, transitions: [], states: [{ rule: 'errors', severity: 'page', body: { state: 'firing', n: 2 } }] });
      expect((await a.states('acme')).map((s) => [s.rule, s.severity, s.body])).toEqual([
        ['errors', 'page', { state: 'firing', n: 2 }],
        ['errors', 'ticket', { state: 'pending' }],
      ]);
      expect((await a.states(null)).length).toBe(2);
      expect((await a.history('acme', 0, 200_000, 10)).map((t) => [t.at, t.severity])).toEqual([
        [60_000, 'ticket'],
        [120_000, 'page'],
      ]);
      expect(await a.history('acme', 60_001, 120_000, 10)).toEqual([]);
      expect(await a.getObject('acme', 'group', 'g1')).toEqual({ sent: ['x'] });

      expect(await a.dueNotifications(999, 10)).toEqual([]);
      const [due] = await a.dueNotifications(1_000, 10);
      expect(due).toMatchObject({ id: 'n-1', tenant: 'acme', receiver: 'oncall', body: { status: 'firing' }, attempts: 0, deliveredAt: null });
      await a.markFailed('n-1', 'connection refused', 5_000);
      expect(await a.dueNotifications(4_999, 10)).toEqual([]);
      expect(await a.dueNotifications(5_000, 10)).toMatchObject([{ attempts: 1, lastError: 'connection refused' }]);
      // Two processes racing to record the delivery: one wins.
      const other = await another();
      expect([await a.markDelivered('n-1', 6_000), await other.alerts.markDelivered('n-1', 6_001)]).toEqual([true, false]);
      expect(await a.dueNotifications(10_000, 10)).toEqual([]);
    });

    it('alerts.due-notifications-take-each-receivers-oldest-first-receivers-in-turn', async () => {
      const { catalog } = await make();
      const a = catalog.alerts;
      const n = (id: string, receiver: string) => ({ id, receiver, body: { id }, nextAt: 0 });
      // One receiver's backlog, queued first, must not fill a page of due notifications.
      await a.saveEvaluation({ tenant: 'acme', states: [], transitions: [], notifications: ['0-slow-1', '0-slow-2', '0-slow-3'].map((id) => n(id, 'slow')), objects: [] });
      await a.saveEvaluation({ tenant: 'acme', states: [], transitions: [], notifications: [n('1-ok', 'oncall')], objects: [] });
      await a.saveEvaluation({ tenant: 'beta', states: [], transitions: [], notifications: [n('2-ok', 'oncall'), n('3-ok', 'oncall')], objects: [] });
      expect((await a.dueNotifications(10, 3)).map((r) => r.id)).toEqual(['0-slow-1', '1-ok', '2-ok']);
      expect((await a.dueNotifications(10, 10)).map((r) => r.id)).toEqual(['0-slow-1', '1-ok', '2-ok', '0-slow-2', '3-ok', '0-slow-3']);
    });

    it('alerts.pruning-deletes-delivered-notifications-before-a-time-keeps-the-rest-and-the-counts', async () => {
      const { catalog } = await make();
      const a = catalog.alerts;
      const n = (id: string, receiver = 'oncall') => ({ id, receiver, body: { id }, nextAt: 0 });
      await a.saveEvaluation({ tenant: 'acme', states: [], transitions: [], notifications: [n('old-1'), n('old-2', 'tickets'), n('new'), n('stuck')], objects: [] });
      await a.markFailed('old-1', 'refused', 0);
      await a.markDelivered('old-1', 1_000);
      await a.markDelivered('old-2', 2_000);
      await a.markDelivered('new', 9_000);
      await a.markFailed('stuck', 'refused', 0);
      const before = await a.notificationCounts();
      expect(before).toEqual([
        { tenant: 'acme', receiver: 'oncall', delivered: 2, failed: 2 },
        { tenant: 'acme', receiver: 'tickets', delivered: 1, failed: 0 },
      ]);
      // In batches: one, then the other; a delivery at the bound itself stays.
      expect(await a.pruneNotifications(2_000, 1)).toBe(1);
      expect(await a.pruneNotifications(2_001, 10)).toBe(1);
      expect(await a.pruneNotifications(2_001, 10)).toBe(0);
      // Undelivered, however old, it stays due; the counts are what they were.
      expect((await a.dueNotifications(Number.MAX_SAFE_INTEGER, 10)).map((r) => r.id)).toEqual(['stuck']);
      expect(await a.notificationCounts()).toEqual(before);
      expect(await a.pruneNotifications(10_000, 10)).toBe(1);
      expect(await a.notificationCounts()).toEqual(before);
      await a.markDelivered('stuck', 11_000);
      expect(await a.notificationCounts()).toEqual([
        { tenant: 'acme', receiver: 'oncall', delivered: 3, failed: 2 },
        { tenant: 'acme', receiver: 'tickets', delivered: 1, failed: 0 },
      ]);
    });

    it('alerts.one-process-holds-the-evaluation-lease-another-takes-over-after-its-ttl', async () => {
      const { catalog, another } = await make();
      const other = await another();
      expect(await catalog.alerts.lease('p1', 10_000, 1_000)).toBe(true);
      expect(await other.alerts.lease('p2', 10_000, 2_000)).toBe(false);
      // Renewed by its holder: still not free at the first expiry.
      expect(await catalog.alerts.lease('p1', 10_000, 5_000)).toBe(true);
      expect(await other.alerts.lease('p2', 10_000, 11_000)).toBe(false);
      // The holder stops renewing: taken over once it expires, and the old holder is out.
      expect(await other.alerts.lease('p2', 10_000, 15_000)).toBe(true);
      expect(await catalog.alerts.lease('p1', 10_000, 16_000)).toBe(false);
    });

    it('alerts.objects-are-put-listed-deleted-and-audited', async () => {
      const { catalog } = await make();
      const a = catalog.alerts;
      expect(await a.putObject('acme', 'receiver', 'oncall', { type: 'webhook', url: 'http://x' }, 'k')).toEqual({ created: true });
      expect(await a.putObject('acme', 'receiver', 'oncall', { type: 'webhook', url: 'http://y' }, 'k')).toEqual({ created: false });
      await a.putObject('acme', 'silence', 's1', { comment: 'deploy' }, 'k');
      expect(await a.listObjects('acme', 'receiver')).toEqual([{ name: 'oncall', body: { type: 'webhook', url: 'http://y' } }]);
      expect(await a.getObject('acme', 'receiver', 'nope')).toBeNull();
      expect(await a.deleteObject('acme', 'receiver', 'oncall', 'k')).toBe(true);
      expect(await a.deleteObject('acme', 'receiver', 'oncall', 'k')).toBe(false);
      expect((await catalog.auditLog('acme', 10)).map((e) => e.action)).toEqual(['alert.receiver.delete', 'alert.silence.put', 'alert.receiver.put', 'alert.receiver.put']);
    });

    it('pipelines.versions-are-compare-and-set-audited-and-move-the-epoch', async () => {
      const { catalog, another } = await make();
      await catalog.createTenant('acme');
      const p = catalog.pipelines;
      expect(await p.current('acme')).toBeNull();
      const epoch = await catalog.epoch();
      const steps1 = [{ cast: { field: 'properties.amount', to: 'number' } }];
      const v1 = await p.put('acme', { steps: steps1, actor: 'key-1', expectedVersion: 0, audit: (before) => ({ before }) });
      expect(v1).toMatchObject({ tenant: 'acme', version: 1, steps: steps1, createdBy: 'key-1' });
      expect(await catalog.epoch()).toBeGreaterThan(epoch);
      // A writer that read version 0 meanwhile is refused; without expected_version it wins.
      expect(await code(p.put('acme', { steps: [], actor: 'key-2', expectedVersion: 0, audit: () => null }))).toBe('SLUICE_ERR_CONFLICT:expected_version');
      const v2 = await p.put('acme', { steps: [], actor: 'key-2', audit: (before) => ({ before }) });
      expect(v2.version).toBe(2);
      const other = await another();
      expect((await other.pipelines.current('acme'))?.version).toBe(2);
      expect((await other.pipelines.get('acme', 1))?.steps).toEqual(steps1);
      expect(await other.pipelines.get('acme', 3)).toBeNull();
      expect((await p.list('acme', 10)).map((v) => v.version)).toEqual([2, 1]);
      expect((await p.list('acme', 1)).map((v) => v.version)).toEqual([2]);
      expect(await p.current('beta')).toBeNull();
      const audit = await catalog.auditLog('acme', 10);
      expect(audit.filter((a) => a.action === 'pipeline.put').map((a) => [a.subject, a.actor, a.detail])).toEqual([
        ['pipeline:2', 'key-2', { before: steps1 }],
        ['pipeline:1', 'key-1', { before: null }],
      ]);
    });

    it('pipelines.a-version-stored-without-activation-is-not-live-until-activated', async () => {
      const { catalog, another } = await make();
      await catalog.createTenant('acme');
      const p = catalog.pipelines;
      const steps1 = [{ cast: { field: 'properties.amount', to: 'number' } }];
      await p.put('acme', { steps: steps1, actor: 'key-1', audit: () => null });
      const epoch = await catalog.epoch();
      const v2 = await p.put('acme', { steps: [], actor: 'key-1', activate: false, audit: (before) => ({ before }) });
      expect(v2.version).toBe(2);
      // Stored, not live: the workers keep version 1, and the epoch stays.
      expect((await p.current('acme'))?.version).toBe(1);
      expect(await catalog.epoch()).toBe(epoch);
      // Compare-and-set is on the live version.
      expect(await code(p.put('acme', { steps: [], actor: 'key-1', expectedVersion: 2, audit: () => null }))).toBe('SLUICE_ERR_CONFLICT:expected_version');
      expect(await code(p.activate('acme', 9, 'key-1', {}))).toBe('SLUICE_ERR_NOT_FOUND:version');
      expect((await p.activate('acme', 2, 'key-1', { rollout: 'ro_1' })).version).toBe(2);
      expect(await catalog.epoch()).toBeGreaterThan(epoch);
      expect((await (await another()).pipelines.current('acme'))?.version).toBe(2);
      // Activating the live version again changes nothing.
      const again = await catalog.epoch();
      await p.activate('acme', 2, 'key-1', {});
      expect(await catalog.epoch()).toBe(again);
      // A version stored by a tenant that has none live leaves it at none.
      await catalog.createTenant('beta');
      await p.put('beta', { steps: [], actor: 'key-1', activate: false, audit: () => null });
      expect(await p.current('beta')).toBeNull();
      const audit = await catalog.auditLog('acme', 10);
      expect(audit.filter((a) => a.action.startsWith('pipeline.')).map((a) => [a.action, a.subject])).toEqual([
        ['pipeline.activate', 'pipeline:2'],
        ['pipeline.store', 'pipeline:2'],
        ['pipeline.put', 'pipeline:1'],
      ]);
    });

    it('pipelines.the-redaction-salt-is-made-once-per-tenant', async () => {
      const { catalog, another } = await make();
      const a = await catalog.pipelines.salt('acme');
      expect(a).toMatch(/^[0-9a-f]{64}$/);
      expect(await catalog.pipelines.salt('acme')).toBe(a);
      expect(await (await another()).pipelines.salt('acme')).toBe(a);
      expect(await catalog.pipelines.salt('beta')).not.toBe(a);
    });

    it('dead-letters.group-lifecycle-open-acknowledged-resolved-with-owner-and-history', async () => {
      const { catalog, another } = await make();
      const dlq = catalog.deadLetters;
      expect(await dlq.groupStates('acme', ['sig-1'])).toEqual(new Map());
      const ack = await dlq.updateGroup('acme', 'sig-1', { status: 'acknowledged', owner: 'payments', note: 'looking' }, 'key-1');
      expect(ack).toMatchObject({ signature: 'sig-1', status: 'acknowledged', owner: 'payments' });
      expect(await code(dlq.updateGroup('acme', 'sig-1', { status: 'acknowledged' }, 'key-1'))).toBe('resolved');
      const resolved = await (await another()).deadLetters.updateGroup('acme', 'sig-1', { status: 'resolved', note: 'fixed by a cast' }, 'key-2');
      expect(resolved.history.map((h) => [h.status, h.owner, h.note, h.actor])).toEqual([
        ['acknowledged', 'payments', 'looking', 'key-1'],
        ['acknowledged', 'payments', null, 'key-1'],
        ['resolved', 'payments', 'fixed by a cast', 'key-2'],
      ]);
      // Resolved goes back to open only.
      expect(await code(dlq.updateGroup('acme', 'sig-1', { status: 'ignored' }, 'key-1'))).toBe('SLUICE_ERR_CONFLICT:status');
      expect(await code(dlq.updateGroup('acme', 'sig-2', { status: 'open' }, 'key-1'))).toBe('resolved');
      const states = await dlq.groupStates('acme', ['sig-1', 'sig-2', 'sig-3']);
      expect([...states.keys()].sort()).toEqual(['sig-1', 'sig-2']);
      expect(states.get('sig-1')?.status).toBe('resolved');
      expect((await dlq.groupStates('other', ['sig-1'])).size).toBe(0);
      expect((await catalog.auditLog('acme', 10, 'sig-1')).map((a) => a.action)).toEqual(['dlq.group', 'dlq.group', 'dlq.group']);
    });

    it('dead-letters.new-open-entries-reopen-a-resolved-group-but-not-an-ignored-one', async () => {
      const { catalog } = await make();
      const dlq = catalog.deadLetters;
      await dlq.record([dead('acme', 1), dead('acme', 2, { reason: 'too_late', message: 'too late by 3 days', path: '' })]);
      const [violation, late] = (await dlq.groups('acme', {}, 10)).map((g) => g.signature);
      await dlq.updateGroup('acme', violation!, { status: 'resolved' }, 'key-1');
      await dlq.updateGroup('acme', late!, { status: 'ignored' }, 'key-1');
      // Held entries do not reopen it; a new open one does; an ignored group stays ignored.
      await dlq.record([dead('acme', 3)], 'held');
      expect((await dlq.groupStates('acme', [violation!])).get(violation!)?.status).toBe('resolved');
      await dlq.record([dead('acme', 4), dead('acme', 5, { reason: 'too_late', message: 'too late by 3 days', path: '' })]);
      const states = await dlq.groupStates('acme', [violation!, late!]);
      expect(states.get(late!)?.status).toBe('ignored');
      const reopened = states.get(violation!)!;
      expect(reopened.status).toBe('open');
      expect(reopened.history.map((h) => [h.status, h.actor, h.note])).toEqual([
        ['resolved', 'key-1', null],
        ['open', 'sluice', 'new dead letters after it was resolved'],
      ]);
    });

    it('rollouts.one-active-per-tenant-and-kind-saved-by-compare-and-set-and-audited', async () => {
      const { catalog, another } = await make();
      await catalog.createTenant('acme');
      const ro = catalog.rollouts;
      const base = { tenant: 'acme', kind: 'schema', state: 'shadow', active: true, createdAt: 1000, updatedAt: 1000, doc: { share: 0, decisions: [{ verdict: 'start' }] } };
      const a = await ro.create({ ...base, id: 'ro_a' }, 'key-1', { change: { schema: { type: 'checkout', version: 4 } } });
      expect(a.rev).toBe(1);
      // A second active rollout of the same kind is refused, from this process or another.
      expect(await code(ro.create({ ...base, id: 'ro_b' }, 'key-1', null))).toBe('SLUICE_ERR_CONFLICT');
      const other = await another();
      expect(await code(other.rollouts.create({ ...base, id: 'ro_b' }, 'key-1', null))).toBe('SLUICE_ERR_CONFLICT');
      // Another kind, or another tenant, is not in the way.
      await ro.create({ ...base, id: 'ro_c', kind: 'pipeline_version', createdAt: 2000 }, 'key-1', null);
      await catalog.createTenant('beta');
      await ro.create({ ...base, id: 'ro_d', tenant: 'beta' }, 'key-1', null);
      expect(await ro.get('beta', 'ro_a')).toBeNull();
      expect((await ro.list('acme')).map((r) => r.id)).toEqual(['ro_c', 'ro_a']);
      expect((await ro.active()).map((r) => r.id).sort()).toEqual(['ro_a', 'ro_c', 'ro_d']);
      // Compare-and-set: the second writer with the same rev gets null, and nothing changed.
      const saved = await ro.save({ ...a, state: 'compare', updatedAt: 2000, doc: { share: 0, decisions: [{ verdict: 'start' }, { verdict: 'advance' }] } }, 'controller', 'rollout.advance', { verdict: 'advance' });
      expect(saved).toMatchObject({ rev: 2, state: 'compare' });
      expect(await other.rollouts.save({ ...a, state: 'aborted', active: false, updatedAt: 2001 }, 'key-2', 'rollout.abort', null)).toBeNull();
      expect(await other.rollouts.get('acme', 'ro_a')).toMatchObject({ rev: 2, state: 'compare', active: true, updatedAt: 2000, doc: { decisions: [{ verdict: 'start' }, { verdict: 'advance' }] } });
      // Once finished, another of its kind may start.
      await ro.save({ ...saved!, state: 'rolled_back', active: false, updatedAt: 3000 }, 'controller', 'rollout.roll_back', { reason: 'dead_letter_rate' });
      await ro.create({ ...base, id: 'ro_e', createdAt: 4000 }, 'key-1', null);
      expect((await catalog.auditLog('acme', 10, 'ro_a')).map((e) => [e.action, e.actor])).toEqual([
        ['rollout.roll_back', 'controller'],
        ['rollout.advance', 'controller'],
        ['rollout.create', 'key-1'],
      ]);
      expect((await catalog.auditLog('acme', 10, 'ro_a'))[0]!.detail).toEqual({ reason: 'dead_letter_rate' });
    });

    it('rollouts.a-promote-saved-with-make-live-makes-its-pipeline-version-live-in-the-same-transaction', async () => {
      const { catalog, another } = await make();
      await catalog.createTenant('acme');
      await catalog.pipelines.put('acme', { steps: [], actor: 'key-1', audit: () => null });
      await catalog.pipelines.put('acme', { steps: [], actor: 'key-1', activate: false, audit: () => null });
      const ro = catalog.rollouts;
      const base = { tenant: 'acme', kind: 'pipeline_version', state: 'ramp', active: true, createdAt: 1000, updatedAt: 1000, doc: { decisions: [] } };
      const a = await ro.create({ ...base, id: 'ro_p' }, 'key-1', null);
      // A version that does not exist: refused, and the rollout is not saved as promoted.
      expect(await code(ro.save({ ...a, state: 'promoted', active: false, updatedAt: 2000 }, 'controller', 'rollout.promote', null, { scope: 'acme', version: 9 }))).toBe('SLUICE_ERR_NOT_FOUND:version');
      expect(await ro.get('acme', 'ro_p')).toMatchObject({ rev: 1, state: 'ramp' });
      expect((await catalog.pipelines.current('acme'))?.version).toBe(1);
      const saved = await ro.save({ ...a, state: 'promoted', active: false, updatedAt: 2000 }, 'controller', 'rollout.promote', null, { scope: 'acme', version: 2 });
      expect(saved).toMatchObject({ rev: 2, state: 'promoted' });
      expect((await (await another()).pipelines.current('acme'))?.version).toBe(2);
      expect((await catalog.auditLog('acme', 10)).slice(0, 2).map((e) => [e.action, e.subject, e.detail])).toEqual([
        ['pipeline.activate', 'pipeline:2', { before: 1, rollout: 'ro_p' }],
        ['rollout.promote', 'ro_p', null],
      ]);
    });

    it('rollouts.tallies-add-up-by-minute-and-side-and-diff-samples-stay-bounded', async () => {
      const { catalog, another } = await make();
      const ro = catalog.rollouts;
      const t = (events: number, dead = 0) => ({ events, dead, dropped: 1, compared: events, diffs: dead, costMs: 0.5 });
      const M = 60_000;
      await ro.addTallies('ro_a', [
        { minute: 0, side: 'cohort', tally: t(10, 1) },
        { minute: 0, side: 'baseline', tally: t(100) },
        { minute: M, side: 'cohort', tally: t(20, 2) },
      ]);
      await (await another()).rollouts.addTallies('ro_a', [{ minute: M, side: 'cohort', tally: t(5) }, { minute: 2 * M, side: 'cohort', tally: t(1000) }]);
      await ro.addTallies('ro_other', [{ minute: 0, side: 'cohort', tally: t(7) }]);
      expect(await ro.tallies('ro_a', 0, 2 * M)).toEqual({
        cohort: { events: 35, dead: 3, dropped: 3, compared: 35, diffs: 3, costMs: 1.5 },
        baseline: { events: 100, dead: 0, dropped: 1, compared: 100, diffs: 0, costMs: 0.5 },
      });
      expect((await ro.tallies('ro_a', M, 3 * M)).cohort.events).toBe(1025);
      expect(await ro.tallies('ro_none', 0, M)).toEqual({ cohort: { events: 0, dead: 0, dropped: 0, compared: 0, diffs: 0, costMs: 0 }, baseline: { events: 0, dead: 0, dropped: 0, compared: 0, diffs: 0, costMs: 0 } });
      expect((await ro.diff('ro_a')).compared).toBe(0);
      const sample = (kind: string, key: string) => ({ kind, key });
      await ro.addDiff('ro_a', { compared: 10, identical: 7, changed: 2, dropped: 1, dead_lettered: 0, samples: [sample('changed', 'k1'), sample('changed', 'k2'), sample('dropped', 'k3')] }, 2);
      await ro.addDiff('ro_a', { compared: 5, identical: 4, changed: 1, dropped: 0, dead_lettered: 0, samples: [sample('changed', 'k4')] }, 2);
      expect(await ro.diff('ro_a')).toEqual({ compared: 15, identical: 11, changed: 3, dropped: 1, dead_lettered: 0, samples: [sample('changed', 'k1'), sample('changed', 'k2'), sample('dropped', 'k3')] });
    });

    it('rollouts.view-diffs-add-up-per-view-and-a-kept-sample-goes-on-adding-up-across-processes', async () => {
      const { catalog, another } = await make();
      /** `events` with amounts of 1 up to `max`, summing to `sum` (none when the sum is 0). */
      const side = (events: number, sum: number, max = sum): CellState => ({ events, numbers: sum === 0 ? {} : { 'properties.amount': { n: events, sum, min: 1, max } } });
      const cell = (bucket: number, plan: string, differs: string[], a: [number, number, number?], c: [number, number, number?]) => ({ bucket, group: { 'properties.plan': plan }, differs, active: side(...a), candidate: side(...c) });
      const view = (name: string, compared: number, differing: number, samples: ReturnType<typeof cell>[]) => ({ tenant: 'acme', view: name, measures: ['count', 'sum:amount'], buckets_compared: compared, buckets_differing: differing, samples });
      const diff = (views: ReturnType<typeof view>[]) => ({ compared: 10, identical: 10, changed: 0, dropped: 0, dead_lettered: 0, samples: [], views });
      const first = await catalog.rollouts.addDiff('ro_v', diff([view('revenue', 3, 2, [cell(0, 'pro', ['sum:amount'], [5, 50], [5, 100]), cell(0, 'free', ['count'], [2, 0], [1, 0])]), view('signups', 1, 0, [])]), 2);
      expect(first.views!.map((v) => [v.view, v.samples.length])).toEqual([
        ['revenue', 2],
        ['signups', 0],
      ]);
      // Another process: the pro cell agrees this time and adds up; a third differing cell finds no room; a new view joins.
      const stored = await (await another()).rollouts.addDiff(
        'ro_v',
        diff([view('revenue', 2, 1, [cell(0, 'pro', [], [1, 7], [1, 7]), cell(60_000, 'pro', ['count'], [1, 1], [2, 2])]), view('orders', 1, 1, [cell(0, 'pro', ['count'], [1, 1], [0, 0])])]),
        2,
      );
      expect(stored).toEqual(await catalog.rollouts.diff('ro_v'));
      expect(stored.compared).toBe(20);
      expect(stored.views).toEqual([
        view('revenue', 5, 3, [cell(0, 'pro', ['sum:amount'], [6, 57, 50], [6, 107, 100]), cell(0, 'free', ['count'], [2, 0], [1, 0])]),
        view('signups', 1, 0, []),
        view('orders', 1, 1, [cell(0, 'pro', ['count'], [1, 1], [0, 0])]),
      ]);
      // A diff stored without views reads without them.
      expect(await catalog.rollouts.addDiff('ro_plain', { compared: 1, identical: 1, changed: 0, dropped: 0, dead_lettered: 0, samples: [] }, 2)).not.toHaveProperty('views');
    });
  });
}
