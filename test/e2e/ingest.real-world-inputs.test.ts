import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConservation } from '../../src/obs/conservation.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * Inputs real producers send (from public bug reports against Segment's libraries, PostHog,
 * Sentry, Snowplow, CloudEvents SDKs, ClickHouse, Vector), end to end: the answer, then what
 * was stored, dead-lettered or refused with the producer's own field. One describe per kind.
 */

let p: Pipeline;
// Two days back: an offset of -23:59 on that day still lands in the past at any hour of today.
const TWO_DAYS_AGO = new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 10);
const HOUR_AGO = () => new Date(Date.now() - 3_600_000).toISOString();

/** POSTs `body` as sent (a string is sent byte for byte: JSON escapes stay escapes). */
function post(url: string, body: string | unknown, headers: Record<string, string> = {}, key: string | null = p.tenant.writeKey) {
  return p.app.inject({
    method: 'POST',
    url,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), 'content-type': 'application/json', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function stored(key: string) {
  const r = await p.app.inject({ method: 'GET', url: `/v1/events/${encodeURIComponent(key)}`, headers: { authorization: `Bearer ${p.tenant.readKey}` } });
  return r.json() as { status: string; stored: { type: string; key: string; ts: string; properties: Record<string, unknown>; context: Record<string, unknown> } | null };
}

async function storedSoon(key: string) {
  await until(async () => (await stored(key)).status === 'stored');
  return (await stored(key)).stored!;
}

async function query(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  return p.app.inject({ method: 'POST', url: '/v1/query', headers: { authorization: `Bearer ${p.tenant.readKey}`, 'content-type': 'application/json', ...headers }, payload: JSON.stringify(body) });
}

const total = async () => (await p.store.rawStats('acme')).events;

beforeAll(async () => {
  p = await startPipeline();
});
afterAll(async () => {
  // Every event received is stored, a duplicate, dead-lettered or refused: nothing else.
  const c = await checkConservation({ log: p.log, store: p.store, catalog: p.catalog }, Date.now() + 120_000, 3_600_000);
  expect(c.unbalanced).toEqual([]);
  expect(c.gapByTenant.get('acme') ?? 0).toBe(0);
  await p.close();
});

describe('1. invalid Unicode', () => {
  it('unicode.lone-surrogates-are-refused-with-the-field-pointer-and-reads-keep-working', async () => {
    const before = await total();
    const r = await post('/v1/events', '{"type":"t","properties":{"name":"ab\\ud800cd"}}');
    expect(r.statusCode).toBe(400);
    expect(r.json()).toMatchObject({ code: 'SLUICE_ERR_INVALID_ENCODING', field: '/properties/name' });
    expect(r.json().message).toContain('\\ud800');
    // Every string an event carries: type, key, idempotency key, keys and values in properties and context.
    const cases: [string, string][] = [
      ['[{"type":"ok"},{"type":"t\\udc00"}]', '/1/type'],
      ['{"type":"t","key":"\\ud83d"}', '/key'],
      ['{"type":"t","idempotency_key":"x\\udfff"}', '/idempotency_key'],
      ['{"type":"t","properties":{"a\\ud800":1}}', '/properties/a\uFFFD'],
      ['{"type":"t","context":{"app":{"v":["x","\\udbff"]}}}', '/context/app/v/1'],
      ['{"batch":[{"type":"t","properties":{"ok":"\\ud83d\\ude00","bad":"\\ude00\\ud83d"}}]}', '/batch/0/properties/bad'],
    ];
    for (const [body, field] of cases) {
      const c = await post('/v1/events', body);
      expect(c.statusCode, body).toBe(400);
      expect(c.json().field, body).toBe(field);
    }
    // The same for Segment and CloudEvents bodies: the producer's own pointer.
    const seg = await post('/v1/track', '{"userId":"u","event":"E","messageId":"m-u1","properties":{"name":"ab\\ud800cd"}}');
    expect(seg.statusCode).toBe(400);
    expect(seg.json().field).toBe('/properties/name');
    const ce = await post('/v1/cloudevents', '{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"n":"\\udc00"}}', { 'content-type': 'application/cloudevents+json' });
    expect(ce.statusCode).toBe(400);
    expect(ce.json().field).toBe('/data/n');
    // A well-formed pair (an emoji written as two escapes) is text, kept exactly.
    const ok = await post('/v1/events', '{"type":"unicode","idempotency_key":"u-ok","properties":{"name":"ab\\ud83d\\ude00cd"}}');
    expect(ok.statusCode).toBe(202);
    expect((await storedSoon('u-ok')).properties).toEqual({ name: 'ab😀cd' });
    expect(await total()).toBe(before + 1);
    const q = await query({ event: 'unicode', from: '-1h', to: 'now', interval: null, group_by: ['properties.name'], measures: ['count'] });
    expect(q.statusCode).toBe(200);
    expect(q.json().rows).toEqual([['ab😀cd', 1]]);
  });
});

describe('2. numbers beyond a double', () => {
  it('numbers.big-integers-are-refused-with-their-pointer-never-rounded-or-merged', async () => {
    const before = await total();
    const r = await post('/v1/events', '{"type":"order","properties":{"order_id": 1234567890123456789}}');
    expect(r.statusCode).toBe(400);
    expect(r.json()).toMatchObject({ code: 'SLUICE_ERR_INVALID_BODY', field: '/properties/order_id' });
    expect(r.json().message).toContain('an integer of 19 digits is beyond'); // the field and the shape, never the value
    expect(r.json().message).not.toContain('1234567890123456789');
    expect(r.json().message).toContain('send it as a string');
    // Two events differing only in such a number: neither is merged into the other.
    const two = await post('/v1/events', '[{"type":"order","properties":{"order_id":1234567890123456789}},{"type":"order","properties":{"order_id":1234567890123456790}}]');
    expect(two.statusCode).toBe(400);
    expect(two.json().field).toBe('/0/properties/order_id');
    // A Segment numeric userId beyond 2^53 would become another entity key.
    const seg = await post('/v1/track', '{"userId":12345678901234567890,"event":"E","messageId":"m-big"}');
    expect(seg.statusCode).toBe(400);
    expect(seg.json().field).toBe('/userId');
    for (const [literal, field] of [
      ['1e400', '/properties/x'],
      ['-1e400', '/properties/x'],
      ['1e-400', '/properties/x'],
      ['-9007199254740993', '/properties/x'],
    ]) {
      const c = await post('/v1/events', `{"type":"order","properties":{"x":${literal}}}`);
      expect(c.statusCode, literal).toBe(400);
      expect(c.json().field, literal).toBe(field);
    }
    expect(await total()).toBe(before);

    // What a double holds is stored exactly; the id as a string is found by an exact filter.
    const ok = await post(
      '/v1/events',
      '[{"type":"order","idempotency_key":"n-1","properties":{"order_id":"1234567890123456789","max":9007199254740991,"min":-9007199254740991,"big":1e308,"tiny":5e-324,"neg0":-0,"frac":0.1}},{"type":"order","idempotency_key":"n-2","properties":{"order_id":"1234567890123456790"}}]',
    );
    expect(ok.json()).toMatchObject({ accepted: 2, duplicates: 0 });
    expect((await storedSoon('n-1')).properties).toEqual({ order_id: '1234567890123456789', max: 9007199254740991, min: -9007199254740991, big: 1e308, tiny: 5e-324, neg0: 0, frac: 0.1 });
    await storedSoon('n-2');
    const q = await query({ event: 'order', from: '-1h', to: 'now', interval: null, filters: [{ field: 'properties.order_id', op: 'eq', value: '1234567890123456789' }], measures: ['count'] });
    expect(q.json().rows).toEqual([[1]]);
    // A Segment numeric userId within 2^53 is its decimal text.
    const small = await post('/v1/track', '{"userId":9007199254740991,"event":"E","messageId":"m-small"}');
    expect(small.statusCode).toBe(200);
    expect((await storedSoon('m-small')).key).toBe('9007199254740991');
  });
});

describe('3. non-numbers in aggregates', () => {
  it('aggregates.nan-and-infinity-text-are-not-numbers-and-an-overflow-reads-one-way', async () => {
    const ts = HOUR_AGO();
    const ev = (type: string, i: number, amount: unknown) => ({ type, ts, idempotency_key: `${type}-${i}`, properties: { amount } });
    const sent = [
      ...[10, 'NaN', 5].map((a, i) => ev('agg-nan', i, a)),
      ...[10, '-inf', 5, 'Infinity', 'abc'].map((a, i) => ev('agg-inf', i, a)),
      ...[1e308, 1e308].map((a, i) => ev('agg-over', i, a)),
      ...[-1e308, -1e308].map((a, i) => ev('agg-under', i, a)),
    ];
    expect((await post('/v1/events', sent)).json()).toMatchObject({ accepted: sent.length });
    await storedSoon('agg-under-1');
    const answer = async (type: string, measures: string[], headers: Record<string, string> = {}) =>
      query({ event: type, from: '-2h', to: 'now', interval: null, measures }, headers);
    expect((await answer('agg-nan', ['sum:amount', 'avg:amount', 'min:amount', 'max:amount'])).json().rows).toEqual([[15, 7.5, 5, 10]]);
    expect((await answer('agg-inf', ['sum:amount', 'max:amount', 'count'])).json().rows).toEqual([[15, 10, 5]]);
    // Past the largest double: that double, in JSON and in CSV, on DuckDB as on PostgreSQL.
    expect((await answer('agg-over', ['sum:amount'])).json().rows).toEqual([[1.7976931348623157e308]]);
    expect((await answer('agg-under', ['sum:amount'])).json().rows).toEqual([[-1.7976931348623157e308]]);
    const csv = await answer('agg-over', ['sum:amount'], { accept: 'text/csv' });
    expect(csv.body).toBe('sum:amount\r\n1.7976931348623157e+308\r\n');
    // The same through a view.
    const put = await p.app.inject({
      method: 'PUT',
      url: '/v1/views/amounts',
      headers: { authorization: `Bearer ${p.tenant.adminKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ event: 'agg-over', dimensions: [], measures: ['sum:amount'], grain: '1m' }),
    });
    expect(put.statusCode).toBe(201);
    await until(async () => (await p.app.inject({ method: 'GET', url: '/v1/views/amounts', headers: { authorization: `Bearer ${p.tenant.readKey}` } })).json().status === 'ready');
    const viewed = (await answer('agg-over', ['sum:amount'])).json();
    expect(viewed.source).toBe('view:amounts');
    expect(viewed.rows).toEqual([[1.7976931348623157e308]]);
  });
});

describe('4. producer-format timestamps', () => {
  it('timestamps.segment-keeps-events-with-unusable-times-flagged-and-refuses-with-the-producer-field', async () => {
    // A real library's malformed timestamp: kept at its receive time, the value flagged.
    const before = Date.now();
    const bad = await post('/v1/track', { userId: 'u4', event: 'Viewed', messageId: 'ts-1', originalTimestamp: '2026-11-29T16:00:27.029:Z', sentAt: '2026-11-29T16:00:27.031Z' });
    expect(bad.statusCode).toBe(200);
    expect(bad.json()).toMatchObject({ success: true, accepted: 1 });
    const s1 = await storedSoon('ts-1');
    expect(Date.parse(s1.ts)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(s1.ts)).toBeLessThanOrEqual(Date.now());
    expect(s1.context).toMatchObject({
      originalTimestamp: '2026-11-29T16:00:27.029:Z',
      sentAt: '2026-11-29T16:00:27.031Z',
      sluice: { ts_unusable: { field: 'originalTimestamp', value: '2026-11-29T16:00:27.029:Z' } },
    });
    // An epoch-milliseconds number: the same.
    const epoch = Date.now() - 60_000;
    expect((await post('/v1/track', { userId: 'u4', event: 'Viewed', messageId: 'ts-2', timestamp: epoch })).statusCode).toBe(200);
    expect((await storedSoon('ts-2')).context).toMatchObject({ sluice: { ts_unusable: { field: 'timestamp', value: epoch } } });
    // A sentAt without a zone is ISO 8601 but not an instant: skew correction is skipped, flagged.
    const ts = HOUR_AGO();
    const batch = await post('/v1/batch', { sentAt: '2026-11-29T16:00:27', batch: [{ type: 'track', userId: 'u4', event: 'Viewed', messageId: 'ts-3', timestamp: ts }] });
    expect(batch.statusCode).toBe(200);
    const s3 = await storedSoon('ts-3');
    expect(s3.ts).toBe(ts);
    expect(s3.context).toMatchObject({ sentAt: '2026-11-29T16:00:27', sluice: { sent_at_unusable: '2026-11-29T16:00:27' } });
    // A NUL in a property: refused with 400 (Segment libraries read the status), the producer's field named.
    const nul = await post('/v1/batch', { batch: [{ type: 'track', userId: 'u4', event: 'Viewed', messageId: 'ts-4' }, { type: 'identify', userId: 'u4', messageId: 'ts-5', traits: { s: 'a\u0000b' } }] });
    expect(nul.statusCode).toBe(400);
    expect(nul.json()).toMatchObject({ success: false, accepted: 1, field: '/batch/1/traits/s', rejected: [{ index: 1, code: 'invalid_field', path: '/batch/1/traits/s' }] });
    expect(nul.json().message).toContain('1 of 2 events refused');
    await storedSoon('ts-4');
    expect((await stored('ts-5')).status).not.toBe('stored');
    // A native batch's unusable sent_at: the same, flagged.
    const native = await post('/v1/events', { sent_at: 'yesterday', batch: [{ type: 'n', idempotency_key: 'ts-6', ts }] });
    expect(native.json()).toMatchObject({ accepted: 1 });
    const s6 = await storedSoon('ts-6');
    expect(s6.ts).toBe(ts);
    expect(s6.context).toEqual({ sluice: { sent_at_unusable: 'yesterday' } });
    // CloudEvents: an event refused outright is not answered 2xx.
    const ce = await post('/v1/cloudevents', { specversion: '1.0', id: 'c1', source: 's', type: 't', time: '29/11/2026' }, { 'content-type': 'application/cloudevents+json' });
    expect(ce.statusCode).toBe(400);
    expect(ce.json()).toMatchObject({ field: '/time', rejected: [{ code: 'invalid_field', path: '/time' }] });
    const batchCe = await post('/v1/cloudevents', [{ specversion: '1.0', id: 'c2', source: 's', type: 't', data: { ok: 1 } }, { specversion: '1.0', id: 'c3', source: 's', type: 't', data: { s: 'a\u0000b' } }], { 'content-type': 'application/cloudevents-batch+json' });
    expect(batchCe.statusCode).toBe(400);
    expect(batchCe.json()).toMatchObject({ accepted: 1, field: '/1/data/s' });
    const binaryCe = await post('/v1/cloudevents', '{"n":1}', { 'ce-specversion': '1.0', 'ce-id': 'c4', 'ce-source': 's', 'ce-type': 't', 'ce-time': 'yesterday' });
    expect(binaryCe.statusCode).toBe(400);
    expect(binaryCe.json().field).toBe('ce-time');
    expect(ce.json().rejected[0].message).toContain('RFC 3339 with Z or ±hh:mm');
  });
});

describe('5. the RFC 3339 grammar', () => {
  it('rfc3339.leap-seconds-lower-case-long-fractions-and-offsets-are-kept', async () => {
    const cases: [string, string, string][] = [
      ['r-1', `${TWO_DAYS_AGO}T23:59:60Z`, `${TWO_DAYS_AGO}T23:59:59.999Z`],
      ['r-2', `${TWO_DAYS_AGO}t10:00:00.123456789012z`, `${TWO_DAYS_AGO}T10:00:00.123Z`],
      ['r-3', `${TWO_DAYS_AGO}T10:00:00.5-23:59`, new Date(Date.parse(`${TWO_DAYS_AGO}T10:00:00.500Z`) + (23 * 60 + 59) * 60_000).toISOString()],
      ['r-4', `${TWO_DAYS_AGO}T10:00:00+05:45`, new Date(Date.parse(`${TWO_DAYS_AGO}T10:00:00Z`) - (5 * 60 + 45) * 60_000).toISOString()],
      ['r-5', `${TWO_DAYS_AGO}T10:00:00-00:00`, `${TWO_DAYS_AGO}T10:00:00.000Z`],
    ];
    const r = await post('/v1/events', cases.map(([k, ts]) => ({ type: 'rfc', idempotency_key: k, ts })));
    expect(r.json()).toMatchObject({ accepted: cases.length, rejected: [] });
    for (const [k, , expected] of cases) expect((await storedSoon(k)).ts, k).toBe(expected);
    expect((await storedSoon('r-1')).context).toEqual({ sluice: { ts_leap_second: `${TWO_DAYS_AGO}T23:59:60Z` } });
    const wrong = await post('/v1/events', { type: 'rfc', ts: `${TWO_DAYS_AGO}T10:00:00` });
    expect(wrong.json().rejected).toEqual([{ index: 0, code: 'invalid_field', path: '/ts', message: expect.stringContaining('RFC 3339 with Z or ±hh:mm') }]);
  });
});

describe('6. browsers and the Segment browser library (HTTP side)', () => {
  it('cors.preflights-on-ingest-routes-only-and-analytics-js-paths-with-the-write-key-in-a-text-body', async () => {
    const origin = 'https://shop.example';
    const pre = await p.app.inject({ method: 'OPTIONS', url: '/v1/events', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers).toMatchObject({ 'access-control-allow-origin': origin, 'access-control-allow-methods': 'POST, OPTIONS' });
    expect(pre.headers['access-control-allow-headers']).toContain('authorization');
    for (const url of ['/v1/t', '/v1/p', '/v1/i', '/v1/g', '/v1/a', '/v1/s', '/v1/b', '/v1/track', '/v1/batch', '/v1/cloudevents']) {
      expect((await p.app.inject({ method: 'OPTIONS', url, headers: { origin, 'access-control-request-method': 'POST' } })).statusCode, url).toBe(204);
    }
    // A binary-mode CloudEvent's ce-* headers are granted.
    const ce = await p.app.inject({ method: 'OPTIONS', url: '/v1/cloudevents', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'ce-id,ce-source,ce-specversion,ce-type,content-type' } });
    expect(ce.headers['access-control-allow-headers']).toBe('authorization, content-type, content-encoding, traceparent, tracestate, ce-id, ce-source, ce-specversion, ce-type');
    // Never for read or admin routes.
    const q = await p.app.inject({ method: 'OPTIONS', url: '/v1/query', headers: { origin, 'access-control-request-method': 'POST' } });
    expect(q.statusCode).toBe(404);
    expect(q.headers['access-control-allow-origin']).toBeUndefined();

    // analytics.js: text/plain, the write key in the body, no Authorization header.
    const t = await post('/v1/t', { writeKey: p.tenant.writeKey, type: 'track', event: 'Clicked', anonymousId: 'anon-b', messageId: 'b-1', properties: { x: 1 }, context: { userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36' } }, { 'content-type': 'text/plain', origin }, null);
    expect(t.statusCode).toBe(200);
    expect(t.headers['access-control-allow-origin']).toBe('*');
    const b = await post('/v1/b', { writeKey: p.tenant.writeKey, sentAt: new Date().toISOString(), batch: [{ type: 'page', anonymousId: 'anon-b', messageId: 'b-2', name: 'Home' }, { type: 'identify', userId: 'u-b', messageId: 'b-3', traits: [] }] }, { 'content-type': 'text/plain', origin }, null);
    expect(b.json()).toMatchObject({ success: true, accepted: 2 });
    const s1 = await storedSoon('b-1');
    expect(s1).toMatchObject({ type: 'Clicked', key: 'anon-b', properties: { x: 1 } });
    // Segment's camelCase userAgent is parsed like user_agent.
    await until(async () => (await stored('b-1')).stored?.context.ua !== undefined);
    expect((await stored('b-1')).stored!.context.ua).toMatchObject({ browser: { name: 'Chrome' }, os: { name: 'Windows' } });
    expect((await storedSoon('b-3')).properties).toEqual({});
    // Non-object traits or properties are refused with the producer's field, never replaced by {}.
    const traits = await post('/v1/identify', { userId: 'u-b', messageId: 'b-4', traits: ['vip', 'beta'] });
    expect(traits.statusCode).toBe(400);
    expect(traits.json().rejected).toEqual([{ index: 0, code: 'invalid_field', path: '/traits', message: expect.stringContaining('must be an object, got array') }]);
    const props = await post('/v1/track', { userId: 'u-b', event: 'E', messageId: 'b-5', properties: 'plan=pro' });
    expect(props.statusCode).toBe(400);
    expect(props.json().rejected[0].path).toBe('/properties');
  });

  it('cors.a-tenant-that-lists-its-origins-refuses-others-before-appending', async () => {
    const q = await startPipeline({ cors: { origins: ['*'], tenants: { acme: ['https://shop.example'] } } }, { workers: false });
    try {
      const send = (origin: string) =>
        q.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${q.tenant.writeKey}`, origin, 'content-type': 'application/json' }, payload: JSON.stringify({ type: 'x' }) });
      const ok = await send('https://shop.example');
      expect(ok.statusCode).toBe(202);
      expect(ok.headers['access-control-allow-origin']).toBe('https://shop.example');
      const no = await send('https://evil.example');
      expect(no.statusCode).toBe(403);
      expect(no.json()).toMatchObject({ code: 'SLUICE_ERR_FORBIDDEN', field: 'Origin' });
      expect((await q.log.tallies(0, Date.now() + 60_000)).reduce((s, t) => s + t.received, 0)).toBe(1);
    } finally {
      await q.close();
    }
  });
});

describe('7. CloudEvents binary mode', () => {
  it('cloudevents.non-json-binary-data-is-415-naming-its-type-and-a-data-less-event-is-kept', async () => {
    const ce = (id: string) => ({ 'ce-specversion': '1.0', 'ce-id': id, 'ce-source': 'urn:s', 'ce-type': 'ce.binary', 'ce-time': HOUR_AGO() });
    const hello = await post('/v1/cloudevents', 'Hello text.', { ...ce('b1'), 'content-type': 'application/octet-stream' });
    expect(hello.statusCode).toBe(415);
    expect(hello.json()).toMatchObject({ code: 'SLUICE_ERR_UNSUPPORTED_MEDIA_TYPE', field: 'Content-Type' });
    expect(hello.json().message).toContain('application/octet-stream');
    const empty = await p.app.inject({ method: 'POST', url: '/v1/cloudevents', headers: { authorization: `Bearer ${p.tenant.writeKey}`, ...ce('b2') } });
    expect(empty.statusCode).toBe(202);
    expect(empty.json()).toMatchObject({ accepted: 1 });
    expect((await storedSoon('urn:s#b2')).properties).toEqual({});
    const structured = await post('/v1/cloudevents', { specversion: '1.0', id: 'b3', source: 'urn:s', type: 'ce.binary' }, { 'content-type': 'application/cloudevents+json' });
    expect(structured.statusCode).toBe(202);
    expect((await storedSoon('urn:s#b3')).properties).toEqual({});
    // Binary data in the CloudEvents JSON format's data_base64 is kept as sent.
    const b64 = await post('/v1/cloudevents', { specversion: '1.0', id: 'b4', source: 'urn:s', type: 'ce.binary', data_base64: Buffer.from('Hello text.').toString('base64') }, { 'content-type': 'application/cloudevents+json' });
    expect(b64.statusCode).toBe(202);
    expect((await storedSoon('urn:s#b4')).properties).toEqual({ data_base64: 'SGVsbG8gdGV4dC4=' });
  });
});

describe('8. body encodings', () => {
  it('encodings.a-utf8-bom-is-ignored-and-a-declared-non-utf8-charset-is-415', async () => {
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ type: 'bom', idempotency_key: 'bom-1', properties: { é: 'ü' } }))]);
    const r = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}`, 'content-type': 'application/json' }, payload: bom });
    expect(r.statusCode).toBe(202);
    expect((await storedSoon('bom-1')).properties).toEqual({ é: 'ü' });
    const latin1 = await p.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { authorization: `Bearer ${p.tenant.writeKey}`, 'content-type': 'application/json; charset=ISO-8859-1' },
      payload: Buffer.from('{"type":"x","properties":{"n":"caf\xe9"}}', 'latin1'),
    });
    expect(latin1.statusCode).toBe(415);
    expect(latin1.json()).toMatchObject({ code: 'SLUICE_ERR_UNSUPPORTED_MEDIA_TYPE', field: 'Content-Type' });
    expect(latin1.json().message).toContain('charset=iso-8859-1');
    expect((await post('/v1/events', { type: 'cs', idempotency_key: 'cs-1' }, { 'content-type': 'application/json; charset=UTF-8' })).statusCode).toBe(202);
  });
});

describe('9. field names', () => {
  it('fields.constructor-and-prototype-are-ordinary-and-dotted-names-are-quoted-in-queries-and-views', async () => {
    const ts = HOUR_AGO();
    const r = await post('/v1/events', [
      { type: 'names', ts, idempotency_key: 'f-1', properties: { constructor: 'c', prototype: 'p', 'price.eur': 5, 'subscription.price_per_month': 7, subscription: { price_per_month: 3 }, 'plan.tier': 'gold' } },
      { type: 'names', ts, idempotency_key: 'f-2', properties: { 'price.eur': 2, subscription: { price_per_month: 1 }, 'plan.tier': 'silver' } },
    ]);
    expect(r.json()).toMatchObject({ accepted: 2, rejected: [] });
    expect((await storedSoon('f-1')).properties).toMatchObject({ constructor: 'c', prototype: 'p' });
    await storedSoon('f-2');
    const q = (measures: string[], extra: Record<string, unknown> = {}) => query({ event: 'names', from: '-2h', to: 'now', interval: null, measures, ...extra });
    // A bare name in a measure is one property, whole; nesting is written out.
    expect((await q(['sum:price.eur', 'sum:properties["price.eur"]', 'sum:subscription.price_per_month', 'sum:properties.subscription.price_per_month'])).json().rows).toEqual([[7, 7, 7, 4]]);
    const grouped = await q(['count', 'sum:properties["price.eur"]'], { group_by: ['properties["plan.tier"]', 'properties.constructor'], filters: [{ field: 'properties["price.eur"]', op: 'gt', value: 1 }] });
    expect(grouped.statusCode).toBe(200);
    expect(grouped.json().columns).toEqual(['properties["plan.tier"]', 'properties.constructor', 'count', 'sum:properties["price.eur"]']);
    expect(grouped.json().rows).toEqual([
      ['gold', 'c', 1, 5],
      ['silver', null, 1, 2],
    ]);
    // A view with a quoted dimension answers what raw events answer.
    const put = await p.app.inject({
      method: 'PUT',
      url: '/v1/views/tiers',
      headers: { authorization: `Bearer ${p.tenant.adminKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ event: 'names', dimensions: ['properties["plan.tier"]'], measures: ['count', 'sum:properties["price.eur"]'], grain: '1m' }),
    });
    expect(put.statusCode).toBe(201);
    await until(async () => (await p.app.inject({ method: 'GET', url: '/v1/views/tiers', headers: { authorization: `Bearer ${p.tenant.readKey}` } })).json().status === 'ready');
    const viewed = (await q(['count', 'sum:properties["price.eur"]'], { group_by: ['properties["plan.tier"]'] })).json();
    expect(viewed.source).toBe('view:tiers');
    expect(viewed.rows).toEqual([
      ['gold', 1, 5],
      ['silver', 1, 2],
    ]);
    // __proto__ stays refused, at ingest and in queries.
    expect((await q(['count'], { group_by: ['properties.__proto__'] })).statusCode).toBe(400);
  });
});
