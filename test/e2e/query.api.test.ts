import { Writable } from 'node:stream';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewTenant } from '../../src/ports/catalog.js';
import { LiveTail } from '../../src/http/tail.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * The query API over HTTP, on the whole embedded pipeline: views declared and built,
 * queries answered from them (and equal to raw answers), CSV, raw event search, lineage,
 * the live tail; tenant isolation and injection attempts.
 */

let p: Pipeline;
let other: NewTenant;
const HOUR = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000).toISOString();
const at = (minute: number) => new Date(Date.parse(HOUR) + minute * 60_000).toISOString();

function call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, key: string, body?: unknown, headers: Record<string, string> = {}) {
  return p.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
}

const events = Array.from({ length: 600 }, (_, i) => ({
  type: i % 3 === 0 ? 'refund' : 'checkout',
  key: `user-${i % 40}`,
  ts: at(i % 60),
  idempotency_key: `ev-${i}`,
  properties: { region: ['eu', 'us', 'apac'][i % 3 === 0 ? 0 : i % 2], amount: i % 50, latency_ms: 10 + (i % 97) },
}));

async function stored(tenant: string): Promise<number> {
  return (await p.store.rawStats(tenant)).events;
}

beforeAll(async () => {
  p = await startPipeline();
  other = await p.catalog.createTenant('globex');
  for (let i = 0; i < events.length; i += 200) {
    const r = await call('POST', '/v1/events', p.tenant.writeKey, events.slice(i, i + 200));
    expect(r.statusCode).toBe(202);
  }
  const r = await call('POST', '/v1/events', other.writeKey, [{ type: 'checkout', key: 'secret-user', ts: at(5), idempotency_key: 'globex-1', properties: { region: 'eu', amount: 1e6 } }]);
  expect(r.statusCode).toBe(202);
  await until(async () => (await stored('acme')) === 600 && (await stored('globex')) === 1);
});
afterAll(async () => {
  await p.close();
});

describe('views over HTTP', () => {
  const view = { event: 'checkout', dimensions: ['properties.region'], measures: ['count', 'sum:amount', 'uniq:key', 'p95:latency_ms'], grain: '1m' };
  const query = { event: 'checkout', from: HOUR, to: at(60), interval: '1h', group_by: ['properties.region'], measures: ['count', 'sum:amount', 'uniq:key', 'p95:latency_ms'] };

  it('views.put-builds-from-raw-events-then-serves-queries-equal-to-raw', async () => {
    expect((await call('POST', '/v1/query', p.tenant.readKey, query)).json().source).toBe('raw');
    expect((await call('PUT', '/v1/views/orders', p.tenant.readKey, view)).statusCode).toBe(403);
    const put = await call('PUT', '/v1/views/orders', p.tenant.adminKey, view);
    expect(put.statusCode).toBe(201);
    expect(put.json()).toMatchObject({ name: 'orders', version: 1, status: 'building', source: 'api' });
    await until(async () => (await call('GET', '/v1/views/orders', p.tenant.readKey)).json().status === 'ready');
    // The same definition again changes nothing.
    expect((await call('PUT', '/v1/views/orders', p.tenant.adminKey, view)).json()).toMatchObject({ version: 1, status: 'ready' });

    const fromView = (await call('POST', '/v1/query', p.tenant.readKey, query)).json();
    const fromRaw = (await call('POST', '/v1/query', p.tenant.readKey, { ...query, source: 'raw' })).json();
    expect(fromView.source).toBe('view:orders');
    expect(fromRaw.source).toBe('raw');
    expect(fromView.columns).toEqual(['bucket', 'properties.region', 'count', 'sum:amount', 'uniq:key', 'p95:latency_ms']);
    expect(fromView.rows.map((r: unknown[]) => r.slice(0, 4))).toEqual(fromRaw.rows.map((r: unknown[]) => r.slice(0, 4)));
    const total = fromView.rows.reduce((s: number, r: number[]) => s + r[2]!, 0);
    expect(total).toBe(400);
    expect(typeof fromView.watermark).toBe('string');

    // New events after the build are maintained in the commit transaction.
    await call('POST', '/v1/events', p.tenant.writeKey, [{ type: 'checkout', key: 'late-user', ts: at(30), idempotency_key: 'ev-late', properties: { region: 'eu', amount: 1000 } }]);
    await until(async () => (await stored('acme')) === 601);
    const after = (await call('POST', '/v1/query', p.tenant.readKey, { ...query, interval: null, group_by: [], measures: ['count', 'sum:amount'] })).json();
    const raw = (await call('POST', '/v1/query', p.tenant.readKey, { ...query, interval: null, group_by: [], measures: ['count', 'sum:amount'], source: 'raw' })).json();
    expect(after.source).toBe('view:orders');
    expect(after.rows).toEqual(raw.rows);
    expect(after.rows[0][0]).toBe(401);
  });

  it('query.answers-csv-with-accept-text-csv', async () => {
    const r = await call('POST', '/v1/query', p.tenant.readKey, { ...query, measures: ['count'] }, { accept: 'text/csv' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/csv/);
    expect(r.headers['x-sluice-source']).toBe('view:orders');
    const lines = r.body.trim().split('\r\n');
    expect(lines[0]).toBe('bucket,properties.region,count');
    // Checkouts are in two regions, eu and us, in one hour.
    expect(lines.length).toBe(3);
    expect(lines[1]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:00:00\.000Z,(eu|us),\d+$/);
  });

  it('query.refuses-too-many-rows-unless-limited-and-orders-by-a-measure', async () => {
    const many = { event: 'checkout', from: HOUR, to: at(60), interval: '1m', group_by: ['key'], measures: ['count'] };
    const small = await startPipeline({ query: { maxRows: 50 } }, { workers: false });
    try {
      const r = await small.app.inject({ method: 'POST', url: '/v1/query', headers: { authorization: `Bearer ${small.tenant.readKey}` }, payload: JSON.stringify({ ...many, limit: 51 }) });
      expect(r.statusCode).toBe(400);
      expect(r.json()).toMatchObject({ field: 'limit' });
    } finally {
      await small.close();
    }
    const top = (await call('POST', '/v1/query', p.tenant.readKey, { event: 'checkout', from: HOUR, to: at(60), interval: null, group_by: ['key'], measures: ['count'], order_by: '-count', limit: 3 })).json();
    expect(top.rows).toHaveLength(3);
    expect(top.rows[0][1]).toBeGreaterThanOrEqual(top.rows[2][1]);
  });
});

describe('raw events: search, lineage, live tail', () => {
  it('events.search-is-newest-first-and-pages-with-a-cursor', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let last = Infinity;
    do {
      const r = await call('GET', `/v1/events?type=refund&limit=70${cursor ? `&cursor=${cursor}` : ''}`, p.tenant.readKey);
      expect(r.statusCode).toBe(200);
      const body = r.json();
      for (const e of body.events) {
        expect(e.type).toBe('refund');
        expect(Date.parse(e.ts)).toBeLessThanOrEqual(last);
        last = Date.parse(e.ts);
        seen.push(e.idempotency_key);
      }
      cursor = body.next_cursor;
    } while (cursor);
    expect(seen).toHaveLength(200);
    expect(new Set(seen).size).toBe(200);
    expect((await call('GET', '/v1/events?cursor=bogus', p.tenant.readKey)).json()).toMatchObject({ field: 'cursor' });
  });

  it('events.lineage-says-stored-dead-lettered-or-unknown', async () => {
    const s = (await call('GET', '/v1/events/ev-7', p.tenant.readKey)).json();
    expect(s).toMatchObject({ status: 'stored', accepted: true, stored: { idempotency_key: 'ev-7', type: 'checkout' } });
    await call('POST', '/v1/events', p.tenant.writeKey, [{ type: 'checkout', ts: '2000-01-01T00:00:00Z', idempotency_key: 'ev-old' }]);
    await until(async () => (await call('GET', '/v1/events/ev-old', p.tenant.readKey)).json().status === 'dead_lettered');
    expect((await call('GET', '/v1/events/ev-old', p.tenant.readKey)).json().dead_letter).toMatchObject({ reason: 'too_late' });
    const u = (await call('GET', '/v1/events/never-sent', p.tenant.readKey)).json();
    expect(u).toMatchObject({ status: 'unknown', accepted: false, stored: null, dead_letter: null });
  });

  it('stream.tails-a-tenants-events-as-server-sent-events', async () => {
    const url = await p.app.listen({ port: 0, host: '127.0.0.1' });
    const ac = new AbortController();
    const res = await fetch(`${url}/v1/stream?type=signup`, { headers: { authorization: `Bearer ${p.tenant.readKey}` }, signal: ac.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    await reader.read();
    await call('POST', '/v1/events', other.writeKey, [{ type: 'signup', key: 'globex-user' }]);
    await call('POST', '/v1/events', p.tenant.writeKey, [{ type: 'pageview', key: 'a' }, { type: 'signup', key: 'acme-user', properties: { plan: 'pro' } }]);
    while (!text.includes('\n\n', text.indexOf('data:'))) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    const data = JSON.parse(text.slice(text.indexOf('data: ') + 6, text.indexOf('\n', text.indexOf('data: '))));
    expect(data).toMatchObject({ type: 'signup', key: 'acme-user', properties: { plan: 'pro' } });
    expect(text).not.toContain('globex-user');
    expect(text).not.toContain('pageview');
  });

  it('stream.drops-a-client-that-does-not-read-instead-of-buffering', () => {
    const sink = new Writable({ highWaterMark: 16, write: () => undefined }) as unknown as ServerResponse;
    const tail = new LiveTail(10);
    tail.subscribe({ tenant: 'acme', scope: 'read', keyId: 'k1' }, 'sluice_r_k1', null, sink);
    const entry = { tenant: 'acme', type: 'x', key: 'k', idempotencyKey: 'i', ts: 0, receivedAt: 0, partition: 0, origin: 'live' as const, properties: '{}', context: '{}' };
    for (let i = 0; i < 50; i++) tail.publish('acme', [entry], [{ status: 'appended', partition: 0, offset: i + 1 }]);
    expect(sink.destroyed).toBe(true);
    expect(tail.dropped).toBe(1);
  });
});

describe('tenant isolation and hostile queries', () => {
  it('isolation.a-read-key-never-sees-another-tenants-rows', async () => {
    const probes = [
      { event: 'checkout', from: HOUR, to: at(60), interval: null, measures: ['count', 'sum:amount'] },
      { from: HOUR, to: at(60), interval: null, group_by: ['key'], measures: ['count'], filters: [{ field: 'key', op: 'eq', value: 'secret-user' }] },
      { from: HOUR, to: at(60), interval: null, group_by: ['type', 'properties.region'], measures: ['count', 'max:amount'], source: 'raw' },
    ];
    for (const q of probes) {
      const mine = (await call('POST', '/v1/query', other.readKey, q)).json();
      const flat = JSON.stringify(mine.rows);
      expect(flat).not.toContain('user-');
      for (const row of mine.rows as number[][]) for (const v of row) if (typeof v === 'number') expect(v).toBeLessThanOrEqual(1e6);
      const theirs = (await call('POST', '/v1/query', p.tenant.readKey, q)).json();
      expect(JSON.stringify(theirs.rows)).not.toContain('secret-user');
      expect(JSON.stringify(theirs.rows)).not.toContain('1000000');
    }
    expect((await call('GET', '/v1/events/ev-7', other.readKey)).json().status).toBe('unknown');
    expect((await call('GET', '/v1/views', other.readKey)).json().views).toEqual([]);
    expect((await call('GET', '/v1/events?limit=1000', other.readKey)).json().events.every((e: { key: string }) => e.key.startsWith('globex') || e.key === 'secret-user')).toBe(true);
  });

  it('injection.through-field-names-fails-with-400-and-through-values-matches-nothing', async () => {
    const before = await stored('acme');
    const evil = ["properties.x'); DROP TABLE events; --", 'properties."x"', 'type; DELETE FROM events', 'properties.a..b', 'events"; --', '__proto__', 'properties.__proto__.x y'];
    for (const field of evil) {
      for (const q of [
        { group_by: [field] },
        { filters: [{ field, op: 'eq', value: 1 }] },
        { measures: [`sum:${field}`] },
        { order_by: field },
      ]) {
        const r = await call('POST', '/v1/query', p.tenant.readKey, { from: HOUR, to: at(60), ...q });
        expect(r.statusCode, `${JSON.stringify(q)}`).toBe(400);
        expect(r.json().code).toBe('SLUICE_ERR_INVALID_QUERY');
      }
      expect((await call('PUT', `/v1/views/${encodeURIComponent(field)}`, p.tenant.adminKey, { measures: ['count'] })).statusCode).toBe(400);
    }
    const values = ["eu' OR '1'='1", "'; DROP TABLE events; --", 'acme', '%'];
    for (const value of values) {
      const r = (await call('POST', '/v1/query', p.tenant.readKey, { from: HOUR, to: at(60), interval: null, measures: ['count'], filters: [{ field: 'properties.region', op: 'eq', value }], source: 'raw' })).json();
      expect(r.rows).toEqual([[0]]);
      const c = (await call('POST', '/v1/query', p.tenant.readKey, { from: HOUR, to: at(60), interval: null, measures: ['count'], filters: [{ field: 'key', op: 'contains', value }] })).json();
      expect(c.rows).toEqual([[0]]);
    }
    expect((await call('POST', '/v1/query', p.tenant.readKey, { event: "x' OR 1=1 --", from: HOUR, interval: null, measures: ['count'] })).json().rows).toEqual([[0]]);
    expect(await stored('acme')).toBe(before);
    expect(await stored('globex')).toBeGreaterThanOrEqual(1);
  });
});

describe('warnings for silent zeros', () => {
  const q = (body: Record<string, unknown>) => call('POST', '/v1/query', p.tenant.readKey, { from: '-7d', to: 'now', interval: null, ...body });

  it('query.warns-of-an-unknown-event-type-with-the-nearest-known-one', async () => {
    const r = (await q({ event: 'chekout' })).json();
    expect(r.rows).toEqual([[0]]);
    expect(r.warnings).toEqual(['no events of type "chekout" in the last 30 days; did you mean "checkout"?']);
    // Nothing near: no suggestion. Another tenant's types are never suggested.
    expect((await q({ event: 'zzzzzzzz' })).json().warnings).toEqual(['no events of type "zzzzzzzz" in the last 30 days']);
  });

  it('query.warns-of-a-measure-on-a-property-no-event-of-the-type-has', async () => {
    const r = (await q({ event: 'checkout', measures: ['count', 'sum:amout', 'max:properties.region_x'] })).json();
    expect(r.rows[0][0]).toBeGreaterThanOrEqual(400);
    expect(r.warnings).toEqual([
      'no "checkout" event in the last 30 days has "properties.amout"; did you mean "properties.amount"?',
      'no "checkout" event in the last 30 days has "properties.region_x"; did you mean "properties.region"?',
    ]);
  });

  it('query.warns-of-a-filter-or-group-by-on-a-property-no-event-of-the-type-has', async () => {
    // A filter on a misspelled property: nothing matches, and the warning says why.
    const filtered = (await q({ event: 'checkout', filters: [{ field: 'properties.regoin', op: 'eq', value: 'eu' }] })).json();
    expect(filtered.rows).toEqual([[0]]);
    expect(filtered.warnings).toEqual(['no "checkout" event in the last 30 days has "properties.regoin"; did you mean "properties.region"?']);
    // A group-by on one: a single null group of everything.
    const grouped = (await q({ event: 'checkout', group_by: ['properties.regoin'] })).json();
    expect(grouped.rows).toHaveLength(1);
    expect(grouped.warnings).toEqual(['no "checkout" event in the last 30 days has "properties.regoin"; did you mean "properties.region"?']);
    // A group-by on a real property: no warning.
    expect((await q({ event: 'checkout', group_by: ['properties.region'] })).json().warnings).toEqual([]);
  });

  it('query.an-answer-with-data-has-no-warnings', async () => {
    expect((await q({ event: 'checkout', measures: ['count', 'sum:amount'] })).json().warnings).toEqual([]);
    // A real zero on a known type and property is not a typo either.
    expect((await q({ event: 'checkout', measures: ['sum:amount'], filters: [{ field: 'properties.amount', op: 'eq', value: 0 }] })).json().warnings).toEqual([]);
  });
});
