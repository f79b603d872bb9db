import { afterEach, describe, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH';
async function call(pipeline: Pipeline, method: Method, url: string, key: string, payload?: unknown) {
  const res = await pipeline.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { status: res.statusCode, body: res.json() as Record<string, any> };
}

const v1 = { type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } };

describe('the schema registry', () => {
  it('schemas.only-the-owning-team-or-an-admin-publishes-and-every-change-is-audited', async () => {
    p = await startPipeline();
    const admin = p.tenant.adminKey;
    const payments = await p.catalog.createKey('acme', 'schema', 'payments');
    const growth = await p.catalog.createKey('acme', 'schema', 'growth');

    expect((await call(p, 'PUT', '/v1/schemas/checkout', admin, { schema: v1 })).body).toMatchObject({ field: 'owner' }); // the first version needs an owner
    expect((await call(p, 'PUT', '/v1/schemas/checkout', payments, { schema: v1 })).status).toBe(201); // first publisher owns it
    expect((await call(p, 'PUT', '/v1/schemas/checkout', growth, { schema: v1 })).status).toBe(403);
    expect((await call(p, 'PUT', '/v1/schemas/checkout', p.tenant.writeKey, { schema: v1 })).status).toBe(403);
    expect((await call(p, 'GET', '/v1/schemas/checkout', p.tenant.readKey)).status).toBe(403);
    const v2 = { ...v1, properties: { amount: { type: 'number' }, coupon: { type: 'string' } } };
    // A new property constrains what was free under that name: refused, then forced with a reason.
    const refused = await call(p, 'PUT', '/v1/schemas/checkout', payments, { schema: v2 });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'SLUICE_ERR_INCOMPATIBLE_SCHEMA', details: { compatible: false, incompatibilities: [{ path: '/properties/coupon' }] } });
    expect((await call(p, 'PUT', '/v1/schemas/checkout', payments, { schema: v2, force: true })).body).toMatchObject({ field: 'reason' });
    const forced = await call(p, 'PUT', '/v1/schemas/checkout', payments, { schema: v2, force: true, reason: 'coupons were always strings' });
    expect(forced.status).toBe(201);
    expect(forced.body).toMatchObject({ version: 2, owner: 'payments', forced_reason: 'coupons were always strings', diff: [{ op: 'add', path: '/properties/coupon' }] });
    // Someone else published meanwhile: compare-and-set on the version.
    expect((await call(p, 'PUT', '/v1/schemas/checkout', admin, { schema: v2, expected_version: 1 })).status).toBe(409);

    const shown = await call(p, 'GET', '/v1/schemas/checkout?version=1', admin);
    expect(shown.body).toMatchObject({ version: 1, owner: 'payments', schema: v1, versions: [{ version: 1 }, { version: 2 }] });
    expect((await call(p, 'GET', '/v1/schemas/checkout/diff', admin)).body).toMatchObject({ from: 1, to: 2, diff: [{ op: 'add', path: '/properties/coupon' }] });
    expect((await call(p, 'GET', '/v1/schemas', payments)).body.schemas).toMatchObject([{ type: 'checkout', version: 2 }]);
    const audit = (await call(p, 'GET', '/v1/audit?subject=checkout', admin)).body.entries;
    expect(audit.map((e: any) => [e.action, e.detail.version])).toEqual([['schema.publish', 2], ['schema.publish', 1]]);
    expect(audit[0].actor).toMatch(/team payments/);
  });

  it('schemas.a-new-version-is-checked-against-recent-traffic-before-anything-changes', async () => {
    p = await startPipeline();
    const admin = p.tenant.adminKey;
    const ts = new Date().toISOString();
    const events = [1, 2, 3, 4].map((i) => ({ type: 'signup', idempotency_key: `s-${i}`, ts, properties: { plan: i % 2 ? 'free' : 'pro' } }));
    await call(p, 'POST', '/v1/events', p.tenant.writeKey, events);
    await until(async () => (await p!.store.rawStats('acme')).events === 4);
    const narrow = { type: 'object', properties: { plan: { enum: ['pro'] } } };
    const dry = await call(p, 'PUT', '/v1/schemas/signup', admin, { owner: 'growth', schema: narrow, dry_run: true });
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ published: false, compatible: false, traffic: { checked: 4, failed: 2, examples: [{ path: '/properties/plan', count: 2 }] } });
    expect((await call(p, 'GET', '/v1/schemas', admin)).body.schemas).toEqual([]); // nothing changed
    expect((await call(p, 'PUT', '/v1/schemas/signup', admin, { owner: 'growth', schema: narrow })).status).toBe(409);
    const wide = { type: 'object', properties: { plan: { enum: ['free', 'pro'] } } };
    expect((await call(p, 'PUT', '/v1/schemas/signup', admin, { owner: 'growth', schema: wide })).body).toMatchObject({ published: true, traffic: { checked: 4, failed: 0 } });
  });

  it('schemas.traffic-check-counts-only-events-the-previous-version-accepts-and-the-new-one-rejects', async () => {
    p = await startPipeline();
    const admin = p.tenant.adminKey;
    const ts = new Date().toISOString();
    // Two checkouts without an amount, stored before any schema; one with it.
    const events = [
      { type: 'checkout', idempotency_key: 'c-1', ts, properties: {} },
      { type: 'checkout', idempotency_key: 'c-2', ts, properties: { coupon: 'x' } },
      { type: 'checkout', idempotency_key: 'c-3', ts, properties: { amount: 3 } },
    ];
    await call(p, 'POST', '/v1/events', p.tenant.writeKey, events);
    await until(async () => (await p!.store.rawStats('acme')).events === 3);
    // A first version: "no schema" accepted all three, v1 rejects two of them.
    const first = await call(p, 'PUT', '/v1/schemas/checkout', admin, { owner: 'payments', schema: v1 });
    expect(first.status).toBe(409);
    expect(first.body.details.traffic).toMatchObject({ checked: 3, failed: 2, already_rejected: 0 });
    expect((await call(p, 'PUT', '/v1/schemas/checkout', admin, { owner: 'payments', schema: v1, force: true, reason: 'amount is required from now on' })).status).toBe(201);
    // A pure widening (a new optional, free property): the two events v1 already rejects do not count.
    const widened = { ...v1, properties: { ...v1.properties, title: {} } };
    const second = await call(p, 'PUT', '/v1/schemas/checkout', admin, { schema: widened });
    expect(second.status).toBe(201);
    expect(second.body).toMatchObject({ version: 2, compatible: true, traffic: { checked: 3, failed: 0, already_rejected: 2 } });
    // A narrowing still counts the event the previous version accepts: amount 3 fails a minimum of 5.
    const narrowed = { ...widened, properties: { ...widened.properties, amount: { type: 'number', minimum: 5 } } };
    const third = await call(p, 'PUT', '/v1/schemas/checkout', admin, { schema: narrowed, dry_run: true });
    expect(third.body.traffic).toMatchObject({ checked: 3, failed: 1, already_rejected: 2, examples: [{ path: '/properties/amount' }] });
  });
});

describe('the time policy and unknown types at ingest', () => {
  it('ingest.late-events-are-dead-lettered-future-ones-clamped-and-skew-corrected', async () => {
    p = await startPipeline({ events: { lateWindowMs: 86_400_000, futureToleranceMs: 60_000 } });
    const now = Date.now();
    const iso = (ms: number) => new Date(ms).toISOString();
    const r = await call(p, 'POST', '/v1/events', p.tenant.writeKey, {
      sent_at: iso(now + 3_600_000), // the device's clock is an hour fast
      batch: [
        { type: 'a', idempotency_key: 'skewed', ts: iso(now + 3_600_000 - 5_000) }, // 5 s before sending, by its clock
        { type: 'a', idempotency_key: 'late', ts: iso(now + 3_600_000 - 3 * 86_400_000) },
      ],
    });
    expect(r.body).toMatchObject({ accepted: 1, rejected: [{ index: 1, code: 'too_late', path: '/ts', dead_lettered: true }] });
    const future = await call(p, 'POST', '/v1/events', p.tenant.writeKey, [{ type: 'a', idempotency_key: 'future', ts: iso(now + 3_600_000) }]);
    expect(future.body).toMatchObject({ accepted: 1, rejected: [] });
    await until(async () => (await p!.store.rawStats('acme')).events === 2);
    await until(async () => (await p!.catalog.deadLetters.counts('acme')).too_late === 1);
    const facts = await p.store.recent('acme', 'a', 10);
    expect(facts).toHaveLength(2);
    const records = (await p.log.read(await p.log.acquire('inspect', 0, 'me', 10_000).then((l) => l!), 10)).concat(
      ...(await Promise.all(Array.from({ length: 15 }, async (_, i) => p!.log.read((await p!.log.acquire('inspect', i + 1, 'me', 10_000))!, 10)))),
    );
    const skewed = records.find((x) => x.idempotencyKey === 'skewed')!;
    expect(Math.abs(skewed.ts - (skewed.receivedAt - 5_000))).toBeLessThan(2); // received_at − (sent_at − ts)
    const clamped = records.find((x) => x.idempotencyKey === 'future')!;
    expect(clamped.ts).toBe(clamped.receivedAt);
    expect(JSON.parse(clamped.context)).toEqual({ sluice: { ts_clamped_from: iso(now + 3_600_000) } });
  });

  it('ingest.unknown-types-are-accepted-dead-lettered-or-rejected-by-tenant-policy', async () => {
    p = await startPipeline();
    const { writeKey, adminKey } = p.tenant;
    await call(p, 'PUT', '/v1/schemas/known', adminKey, { owner: 'core', schema: { type: 'object' } });
    const send = (key: string) => call(p!, 'POST', '/v1/events', writeKey, [{ type: 'known', idempotency_key: `k-${key}` }, { type: 'mystery', idempotency_key: `m-${key}` }]);
    expect((await send('1')).body).toMatchObject({ accepted: 2, rejected: [] });
    await call(p, 'PATCH', '/v1/tenant', adminKey, { unknown_types: 'dead-letter' });
    expect((await send('2')).body).toMatchObject({ accepted: 1, rejected: [{ index: 1, code: 'unknown_type', dead_lettered: true }] });
    await call(p, 'PATCH', '/v1/tenant', adminKey, { unknown_types: 'reject' });
    const rejected = await send('3');
    expect(rejected.body).toMatchObject({ accepted: 1, rejected: [{ index: 1, code: 'unknown_type', path: '/type' }] });
    expect(rejected.body.rejected[0].dead_lettered).toBeUndefined();
    expect((await call(p, 'PATCH', '/v1/tenant', adminKey, { unknown_types: 'drop' })).status).toBe(400);
    await until(async () => (await p!.store.rawStats('acme')).events === 4);
    await until(async () => (await p!.catalog.deadLetters.counts('acme')).unknown_type === 1);
  });
});
