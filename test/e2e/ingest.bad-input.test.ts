import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline;
beforeEach(async () => {
  p = await startPipeline({}, { workers: false });
});
afterEach(async () => {
  await p.close();
});

function post(payload: string | Buffer, headers: Record<string, string> = {}, key?: string | null) {
  return p.app.inject({
    method: 'POST',
    url: '/v1/events',
    payload,
    headers: { 'content-type': 'application/json', ...(key === null ? {} : { authorization: `Bearer ${key ?? p.tenant.writeKey}` }), ...headers },
  });
}

async function appended(): Promise<number> {
  return (await p.log.positions('any')).reduce((s, x) => s + x.head, 0);
}

/** Today's date (UTC): event times inside the lateness window whenever the test runs. */
const TODAY = new Date().toISOString().slice(0, 10);

describe('ingest rejects bad input with a clear error naming the field', () => {
  it('401 without a key, with a malformed key, with an unknown key, with a revoked key', async () => {
    for (const [key, header] of [
      [null, undefined],
      ['not-a-key', undefined],
      ['sluice_w_0000000000000000_' + 'A'.repeat(43), undefined],
    ] as const) {
      const r = await post('{"type":"a"}', header ?? {}, key);
      expect(r.statusCode).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer');
      expect(r.json()).toMatchObject({ code: 'SLUICE_ERR_UNAUTHORIZED', field: 'Authorization' });
    }
    const tampered = p.tenant.writeKey.slice(0, -1) + (p.tenant.writeKey.endsWith('A') ? 'B' : 'A');
    expect((await post('{"type":"a"}', {}, tampered)).statusCode).toBe(401);
    const keyId = p.tenant.writeKey.split('_')[2]!;
    expect(await p.catalog.revokeKey(keyId)).toBe(true);
    expect((await post('{"type":"a"}')).statusCode).toBe(401);
    expect(await appended()).toBe(0);
  });

  it('403 with a read key', async () => {
    const r = await post('{"type":"a"}', {}, p.tenant.readKey);
    expect(r.statusCode).toBe(403);
    expect(r.json()).toMatchObject({ code: 'SLUICE_ERR_FORBIDDEN', field: 'Authorization' });
  });

  it('400 for a body that is not JSON, is empty, is not UTF-8, or is not an event', async () => {
    const cases: [string | Buffer, string, string][] = [
      ['{"type":', 'SLUICE_ERR_INVALID_JSON', 'body'],
      ['', 'SLUICE_ERR_INVALID_JSON', 'body'],
      [Buffer.from([0x5b, 0x22, 0xff, 0xfe, 0x22, 0x5d]), 'SLUICE_ERR_INVALID_ENCODING', 'body'],
      ['42', 'SLUICE_ERR_INVALID_BODY', 'body'],
      ['{"batch": {"type":"a"}}', 'SLUICE_ERR_INVALID_BODY', 'batch'],
      ['{"batch": [], "extra": 1}', 'SLUICE_ERR_INVALID_BODY', 'extra'],
    ];
    for (const [body, code, field] of cases) {
      const r = await post(body);
      expect(r.statusCode, String(body)).toBe(400);
      expect(r.json()).toMatchObject({ statusCode: 400, code, field });
      expect(r.json().message).toEqual(expect.any(String));
    }
    const gz = await post('definitely not gzip', { 'content-encoding': 'gzip' });
    expect(gz.statusCode).toBe(400);
    expect(gz.json()).toMatchObject({ code: 'SLUICE_ERR_INVALID_ENCODING', field: 'Content-Encoding' });
    const br = await post('{}', { 'content-encoding': 'br' });
    expect(br.statusCode).toBe(415);
    expect(await appended()).toBe(0);
  });

  it('rejects bad events one by one, with a JSON pointer, and accepts the rest', async () => {
    const r = await post(
      JSON.stringify([
        { type: 'ok', key: 'u1' },
        { key: 'u1' },
        { type: 7 },
        { type: 'a', ts: '2026-02-31T00:00:00Z' },
        { type: 'a', properties: [] },
        { type: 'a', properties: { nested: { ['__proto__']: 1 } } },
        { type: 'a', extra: true },
        'not an object',
        { type: 'bad\u0000type' },
        { type: 'a', properties: { s: 'nul\u0000inside' } },
        { type: 'ok', ts: `${TODAY}T10:00:00.123+02:00`, idempotency_key: 'x-1', context: { ip: '10.0.0.1' } },
      ]),
    );
    expect(r.statusCode).toBe(202);
    const body = r.json();
    expect(body.accepted).toBe(2);
    expect(body.duplicates).toBe(0);
    expect(body.rejected).toEqual([
      { index: 1, code: 'missing_field', path: '/type', message: expect.stringContaining('"type" is required') },
      { index: 2, code: 'invalid_field', path: '/type', message: expect.stringContaining('must be a string') },
      { index: 3, code: 'invalid_field', path: '/ts', message: expect.stringContaining('RFC 3339') },
      { index: 4, code: 'invalid_field', path: '/properties', message: expect.stringContaining('must be an object') },
      { index: 5, code: 'invalid_field', path: '/properties/nested/__proto__', message: expect.stringContaining('not allowed') },
      { index: 6, code: 'unknown_field', path: '/extra', message: expect.stringContaining('unknown field') },
      { index: 7, code: 'invalid_event', path: '', message: expect.stringContaining('JSON object') },
      { index: 8, code: 'invalid_field', path: '/type', message: expect.stringContaining('control character') },
      { index: 9, code: 'invalid_field', path: '/properties/s', message: expect.stringContaining('NUL') },
    ]);
    expect(await appended()).toBe(2);
  });

  it('rejects nesting past the depth limit without a crash, even 10,000 levels deep', async () => {
    const deep = '{"type":"a","properties":' + '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000) + '}';
    const r = await post(deep);
    expect(r.statusCode).toBe(202);
    expect(r.json().rejected[0]).toMatchObject({ code: 'invalid_field', message: expect.stringContaining('nesting deeper than 32') });
  });

  it('413 for a body over 1 MiB, an event over 32 KiB, over 1,000 events, or over 10 MiB decompressed; nothing appended', async () => {
    const big = await post(JSON.stringify([{ type: 'a', properties: { s: 'x'.repeat(1_100_000) } }]));
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ code: 'SLUICE_ERR_BODY_TOO_LARGE', field: 'body' });

    const fat = await post(JSON.stringify([{ type: 'a' }, { type: 'a', properties: { s: 'x'.repeat(40_000) } }]));
    expect(fat.statusCode).toBe(413);
    expect(fat.json()).toMatchObject({ code: 'SLUICE_ERR_EVENT_TOO_LARGE', field: '/1' });
    expect(fat.json().message).toContain('32768');

    const many = await post(JSON.stringify(Array.from({ length: 1001 }, () => ({ type: 'a' }))));
    expect(many.statusCode).toBe(413);
    expect(many.json()).toMatchObject({ code: 'SLUICE_ERR_TOO_MANY_EVENTS', field: 'batch' });

    // A gzip bomb: 20 MiB of spaces compress to ~20 KiB.
    const bomb = gzipSync(Buffer.concat([Buffer.from('['), Buffer.alloc(20 * 1024 * 1024, 0x20), Buffer.from(']')]));
    expect(bomb.length).toBeLessThan(1_048_576);
    const b = await post(bomb, { 'content-encoding': 'gzip' });
    expect(b.statusCode).toBe(413);
    expect(b.json()).toMatchObject({ code: 'SLUICE_ERR_BODY_TOO_LARGE' });
    expect(await appended()).toBe(0);
  });

  it('accepts gzip, a single event, an array and { batch } with derived keys', async () => {
    const gz = await post(gzipSync(JSON.stringify({ batch: [{ type: 'a', ts: `${TODAY}T10:00:00Z` }] })), { 'content-encoding': 'gzip' });
    expect(gz.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    // Same type, key, ts and properties, no idempotency key: the same semantic event.
    const again = await post(JSON.stringify({ type: 'a', ts: `${TODAY}T10:00:00Z` }));
    expect(again.json()).toEqual({ accepted: 0, duplicates: 1, rejected: [] });
    expect((await post('[]')).json()).toEqual({ accepted: 0, duplicates: 0, rejected: [] });
  });

  it('answers unknown routes and bad queries with JSON errors', async () => {
    const r = await p.app.inject({ method: 'GET', url: '/v1/nope' });
    expect(r.statusCode).toBe(404);
    expect(r.json()).toMatchObject({ code: 'SLUICE_ERR_NOT_FOUND' });
    const q = (payload: unknown) =>
      p.app.inject({ method: 'POST', url: '/v1/query', payload: JSON.stringify(payload), headers: { authorization: `Bearer ${p.tenant.readKey}` } });
    expect((await q({ interval: '2m' })).json()).toMatchObject({ code: 'SLUICE_ERR_INVALID_QUERY', field: 'interval' });
    expect((await q({ from: 'yesterday' })).json()).toMatchObject({ code: 'SLUICE_ERR_INVALID_QUERY', field: 'from' });
    expect((await q({ measures: ['median:amount'] })).json()).toMatchObject({ field: 'measures[0]' });
    expect((await q({ tenant: 'other' })).json()).toMatchObject({ field: 'tenant' });
    const huge = await q({ from: '2000-01-01T00:00:00Z', to: 'now', interval: '1m' });
    expect(huge.statusCode).toBe(422);
    expect(huge.json()).toMatchObject({ code: 'SLUICE_ERR_QUERY_TOO_LARGE' });
    const w = await p.app.inject({ method: 'POST', url: '/v1/query', payload: '{}', headers: { authorization: `Bearer ${p.tenant.writeKey}` } });
    expect(w.statusCode).toBe(403);
  });
});
