import { afterEach, describe, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/** The APIs the console reads, in process (inject) on the real embedded engines. */
describe('console APIs', () => {
  let p: Pipeline;
  afterEach(async () => {
    await p?.close();
  });

  const call = async (key: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown) => {
    const r = await p.app.inject({ method, url, headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
    return { status: r.statusCode, body: r.body ? (JSON.parse(r.body) as Record<string, any>) : null };
  };

  async function sendAndSettle(events: unknown[], stored: number): Promise<void> {
    expect((await call(p.tenant.writeKey, 'POST', '/v1/events', events)).status).toBe(202);
    await until(async () => (await call(p.tenant.readKey, 'POST', '/v1/query', { interval: null, from: '-1h', source: 'raw' })).body?.rows[0]?.[0] === stored);
  }

  it('whoami.names-the-tenant-and-scope-of-any-key', async () => {
    p = await startPipeline({}, { workers: false });
    for (const [key, scope] of [
      [p.tenant.writeKey, 'write'],
      [p.tenant.readKey, 'read'],
      [p.tenant.adminKey, 'admin'],
    ] as const) {
      const r = await call(key, 'GET', '/v1/whoami');
      expect(r).toMatchObject({ status: 200, body: { tenant: 'acme', scope, team: null } });
      expect(key).toContain(`_${r.body!.key_id}_`);
    }
    expect((await call('sluice_r_0000000000000000_' + 'a'.repeat(43), 'GET', '/v1/whoami')).status).toBe(401);
  });

  it('signals.sum-the-tenants-minute-tallies-and-balance', async () => {
    p = await startPipeline();
    const other = await p.catalog.createTenant('other');
    await sendAndSettle(
      [
        ...Array.from({ length: 5 }, (_, i) => ({ type: 'a', key: 'k', idempotency_key: `a-${i}` })),
        { type: 'a', key: 'k', idempotency_key: 'a-0' },
        { type: 'a', key: 'k', ts: 'yesterday' },
      ],
      5,
    );
    expect((await call(other.writeKey, 'POST', '/v1/events', [{ type: 'x', key: 'k' }])).status).toBe(202);
    const r = await call(p.tenant.readKey, 'GET', '/v1/signals?from=-10m&interval=5m');
    expect(r.status).toBe(200);
    const { columns, rows } = r.body as { columns: string[]; rows: (string | number | null)[][] };
    expect(columns.slice(0, 8)).toEqual(['bucket', 'received', 'accepted', 'rejected', 'duplicate', 'stored', 'dead_lettered', 'gap']);
    const sum = (c: string) => rows.reduce((s, row) => s + Number(row[columns.indexOf(c)] ?? 0), 0);
    expect({ received: sum('received'), accepted: sum('accepted'), rejected: sum('rejected'), duplicate: sum('duplicate'), stored: sum('stored'), dead: sum('dead_lettered') }).toEqual({
      received: 7,
      accepted: 5,
      rejected: 1,
      duplicate: 1,
      stored: 5,
      dead: 0,
    });
    expect(rows.length).toBeGreaterThanOrEqual(2);
    // Settled buckets balance; the last one may still be settling (null).
    const gaps = rows.map((row) => row[columns.indexOf('gap')]);
    expect(gaps.filter((g) => g !== null).every((g) => g === 0)).toBe(true);
    expect(gaps[0]).toBe(0);
    expect(rows.every((row) => Date.parse(String(row[0])) % 300_000 === 0)).toBe(true);
    expect(Date.parse(r.body!.watermark)).toBeGreaterThan(Date.now() - 60_000);

    expect((await call(p.tenant.readKey, 'GET', '/v1/signals?interval=2m')).body).toMatchObject({ code: 'SLUICE_ERR_INVALID_QUERY', field: 'interval' });
    expect((await call(p.tenant.readKey, 'GET', '/v1/signals?from=-30d&interval=1m')).status).toBe(422);
    expect((await call(p.tenant.readKey, 'GET', '/v1/signals?window=1h')).status).toBe(400);
    expect((await call(p.tenant.writeKey, 'GET', '/v1/signals')).status).toBe(403);
  });

  it('catalog.lists-types-counts-last-seen-and-property-types', async () => {
    p = await startPipeline();
    const other = await p.catalog.createTenant('other');
    expect((await call(other.writeKey, 'POST', '/v1/events', [{ type: 'secret', key: 'k', properties: { hidden: 1 } }])).status).toBe(202);
    await sendAndSettle(
      [
        { type: 'checkout', key: 'u1', properties: { amount: 3, region: 'eu', cart: { items: 2 } } },
        { type: 'checkout', key: 'u2', properties: { amount: '3', tags: ['a'], 'not a name': 1 } },
        { type: 'signup', key: 'u3', properties: { plan: null } },
      ],
      3,
    );
    const r = await call(p.tenant.readKey, 'GET', '/v1/catalog');
    expect(r.status).toBe(200);
    const types = r.body!.event_types as { type: string; count: number; last_seen: string; properties: unknown }[];
    expect(types.map((t) => [t.type, t.count])).toEqual([
      ['checkout', 2],
      ['signup', 1],
    ]);
    expect(Date.parse(types[0]!.last_seen)).toBeGreaterThan(Date.now() - 60_000);
    expect(types[0]!.properties).toEqual([
      { path: 'properties.amount', types: ['number', 'string'] },
      { path: 'properties.cart', types: ['object'] },
      { path: 'properties.cart.items', types: ['number'] },
      { path: 'properties.region', types: ['string'] },
      { path: 'properties.tags', types: ['array'] },
    ]);
    expect(types[1]!.properties).toEqual([{ path: 'properties.plan', types: ['null'] }]);
    expect(JSON.stringify(r.body)).not.toContain('secret');
    expect(types[0]).not.toHaveProperty('properties_truncated');
  });

  it('catalog.a-type-with-thousands-of-properties-lists-at-most-500-paths-and-says-so', async () => {
    p = await startPipeline();
    // 20 events of 900 properties each, every one a name no other event has: 18,000 paths.
    await sendAndSettle(
      Array.from({ length: 20 }, (_, e) => ({ type: 'wide', key: `k${e}`, properties: Object.fromEntries(Array.from({ length: 900 }, (_, i) => [`p${e}_${i}`, i])) })),
      20,
    );
    const r = await call(p.tenant.readKey, 'GET', '/v1/catalog');
    const wide = (r.body!.event_types as { type: string; properties: unknown[]; properties_truncated?: boolean }[]).find((t) => t.type === 'wide')!;
    expect(wide.properties).toHaveLength(500);
    expect(wide.properties_truncated).toBe(true);
  });

  it('saved-queries.are-checked-scoped-and-audited-over-http', async () => {
    p = await startPipeline({}, { workers: false });
    const other = await p.catalog.createTenant('other');
    const query = { event: 'checkout', measures: ['count'], interval: '1h', from: '-24h' };
    const created = await call(p.tenant.readKey, 'POST', '/v1/saved-queries', { name: ' Checkouts ', query });
    expect(created).toMatchObject({ status: 201, body: { name: 'Checkouts', query } });
    const id = created.body!.id as string;
    expect((await call(p.tenant.readKey, 'POST', '/v1/saved-queries', { name: 'bad', query: { measures: ['median:x'] } })).body).toMatchObject({
      code: 'SLUICE_ERR_INVALID_QUERY',
      field: 'query.measures[0]',
    });
    expect((await call(p.tenant.readKey, 'POST', '/v1/saved-queries', { name: '', query })).body).toMatchObject({ field: 'name' });
    expect((await call(p.tenant.readKey, 'GET', '/v1/saved-queries')).body!.saved_queries.map((q: { id: string }) => q.id)).toEqual([id]);
    expect((await call(p.tenant.adminKey, 'PUT', `/v1/saved-queries/${id}`, { name: 'Daily', query: { ...query, interval: '1d' } })).body).toMatchObject({ id, name: 'Daily', query: { interval: '1d' } });
    expect((await call(p.tenant.readKey, 'GET', `/v1/saved-queries/${id}`)).body).toMatchObject({ name: 'Daily' });
    // Another tenant cannot see, change or delete it: 404 as if it did not exist.
    expect((await call(other.readKey, 'GET', `/v1/saved-queries/${id}`)).status).toBe(404);
    expect((await call(other.readKey, 'PUT', `/v1/saved-queries/${id}`, { name: 'x', query })).status).toBe(404);
    expect((await call(other.readKey, 'DELETE', `/v1/saved-queries/${id}`)).status).toBe(404);
    expect((await call(other.readKey, 'GET', '/v1/saved-queries')).body!.saved_queries).toEqual([]);
    expect((await call(p.tenant.writeKey, 'GET', '/v1/saved-queries')).status).toBe(403);
    expect((await call(p.tenant.readKey, 'DELETE', `/v1/saved-queries/${id}`)).status).toBe(204);
    expect((await call(p.tenant.readKey, 'GET', `/v1/saved-queries/${id}`)).status).toBe(404);
    const audit = (await call(p.tenant.adminKey, 'GET', '/v1/audit')).body!.entries.map((e: { action: string }) => e.action);
    expect(audit).toEqual(['saved_query.delete', 'saved_query.update', 'saved_query.create']);
  });

  it('keys.are-listed-without-secrets-created-once-and-revoked-with-an-audit-trail', async () => {
    p = await startPipeline({}, { workers: false });
    const other = await p.catalog.createTenant('other');
    const adminId = (await call(p.tenant.adminKey, 'GET', '/v1/whoami')).body!.key_id as string;
    expect((await call(p.tenant.readKey, 'GET', '/v1/keys')).status).toBe(403);

    const created = await call(p.tenant.adminKey, 'POST', '/v1/keys', { scope: 'schema', team: 'payments' });
    expect(created).toMatchObject({ status: 201, body: { scope: 'schema', team: 'payments' } });
    const secret = created.body!.key as string;
    expect((await call(secret, 'GET', '/v1/whoami')).body).toMatchObject({ tenant: 'acme', scope: 'schema', team: 'payments' });
    expect((await call(p.tenant.adminKey, 'POST', '/v1/keys', { scope: 'root' })).body).toMatchObject({ field: 'scope' });
    expect((await call(p.tenant.adminKey, 'POST', '/v1/keys', { scope: 'schema' })).body).toMatchObject({ field: 'team' });

    const listed = await call(p.tenant.adminKey, 'GET', '/v1/keys');
    expect(listed.body!.keys.map((k: { scope: string }) => k.scope).sort()).toEqual(['admin', 'read', 'schema', 'write']);
    expect(Object.keys(listed.body!.keys[0]).sort()).toEqual(['created_at', 'id', 'last_used_at', 'revoked_at', 'scope', 'team']);
    for (const k of [p.tenant.writeKey, p.tenant.readKey, p.tenant.adminKey, secret]) expect(JSON.stringify(listed.body)).not.toContain(k.split('_').slice(3).join('_'));
    expect(listed.body!.keys.find((k: { id: string }) => k.id === adminId).last_used_at).not.toBeNull();

    const newId = created.body!.id as string;
    const otherId = (await call(other.adminKey, 'GET', '/v1/whoami')).body!.key_id as string;
    expect((await call(p.tenant.adminKey, 'DELETE', `/v1/keys/${otherId}`)).status).toBe(404);
    expect((await call(other.adminKey, 'GET', '/v1/whoami')).status).toBe(200);
    expect((await call(p.tenant.adminKey, 'DELETE', `/v1/keys/${adminId}`)).status).toBe(409);
    expect((await call(p.tenant.adminKey, 'DELETE', `/v1/keys/${newId}`)).status).toBe(204);
    expect((await call(p.tenant.adminKey, 'DELETE', `/v1/keys/${newId}`)).status).toBe(404);
    expect((await call(secret, 'GET', '/v1/whoami')).status).toBe(401);
    const audit = (await call(p.tenant.adminKey, 'GET', '/v1/audit')).body!.entries as { action: string; actor: string; subject: string }[];
    expect(audit.map((e) => [e.action, e.actor])).toEqual([
      ['key.revoke', adminId],
      ['key.create', adminId],
    ]);
    expect(audit[0]!.subject).toBe(newId);
  });
});
