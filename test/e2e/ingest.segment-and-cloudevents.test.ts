import zlib from 'node:zlib';
import { Analytics } from '@segment/analytics-node';
import { CloudEvent, emitterFor, httpTransport, HTTP, Mode } from 'cloudevents';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * Producers that already speak Segment or CloudEvents, with their own libraries pointed at
 * sluice: `@segment/analytics-node` and the `cloudevents` SDK, over real HTTP.
 */

let p: Pipeline;
let url: string;
beforeAll(async () => {
  p = await startPipeline();
  url = await p.app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await p.close();
});

async function stored(key: string) {
  const r = await p.app.inject({ method: 'GET', url: `/v1/events/${encodeURIComponent(key)}`, headers: { authorization: `Bearer ${p.tenant.readKey}` } });
  return r.json() as { status: string; stored: { type: string; key: string; ts: string; properties: Record<string, unknown>; context: Record<string, unknown> } | null };
}

describe('Segment tracking API', () => {
  it('segment.analytics-node-track-identify-page-group-alias-land-as-events-once', async () => {
    const analytics = new Analytics({ writeKey: p.tenant.writeKey, host: url, flushInterval: 50, maxEventsInBatch: 10 });
    const errors: unknown[] = [];
    analytics.on('error', (e) => errors.push(e));
    const ts = new Date(Date.now() - 60_000);
    analytics.track({ userId: 'user-1', event: 'Order Completed', messageId: 'seg-1', timestamp: ts, properties: { revenue: 42.5, currency: 'EUR' }, context: { ip: '203.0.113.9' } });
    analytics.identify({ userId: 'user-1', messageId: 'seg-2', traits: { plan: 'pro', email: 'a@example.com' } });
    analytics.page({ anonymousId: 'anon-7', messageId: 'seg-3', name: 'Pricing', category: 'Docs', properties: { path: '/pricing' } });
    analytics.screen({ userId: 'user-1', messageId: 'seg-4', name: 'Home' });
    analytics.group({ userId: 'user-1', messageId: 'seg-5', groupId: 'acme-inc', traits: { employees: 40 } });
    analytics.alias({ userId: 'user-1', previousId: 'anon-7', messageId: 'seg-6' });
    // The same message again (a retry of the producer): counted once.
    analytics.track({ userId: 'user-1', event: 'Order Completed', messageId: 'seg-1', timestamp: ts, properties: { revenue: 42.5, currency: 'EUR' } });
    await analytics.closeAndFlush({ timeout: 10_000 });
    expect(errors).toEqual([]);
    await until(async () => (await stored('seg-6')).status === 'stored');

    const track = (await stored('seg-1')).stored!;
    expect(track).toMatchObject({ type: 'Order Completed', key: 'user-1', properties: { revenue: 42.5, currency: 'EUR' }, context: { userId: 'user-1' } });
    expect(Math.abs(Date.parse(track.ts) - ts.getTime())).toBeLessThan(5_000);
    expect((await stored('seg-2')).stored).toMatchObject({ type: 'identify', key: 'user-1', properties: { plan: 'pro' } });
    expect((await stored('seg-3')).stored).toMatchObject({ type: 'page', key: 'anon-7', properties: { name: 'Pricing', category: 'Docs', path: '/pricing' }, context: { anonymousId: 'anon-7' } });
    expect((await stored('seg-4')).stored).toMatchObject({ type: 'screen', properties: { name: 'Home' } });
    expect((await stored('seg-5')).stored).toMatchObject({ type: 'group', properties: { groupId: 'acme-inc', employees: 40 } });
    expect((await stored('seg-6')).stored).toMatchObject({ type: 'alias', properties: { previousId: 'anon-7' } });
    expect((await p.store.rawStats('acme')).events).toBe(6);
  });

  it('segment.single-calls-with-basic-auth-or-a-write-key-in-the-body-and-clear-errors', async () => {
    const basic = 'Basic ' + Buffer.from(`${p.tenant.writeKey}:`).toString('base64');
    const r = await p.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basic }, payload: JSON.stringify({ userId: 'u2', event: 'Signed Up', messageId: 'seg-10' }) });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ success: true, accepted: 1 });
    const body = await p.app.inject({ method: 'POST', url: '/v1/identify', payload: JSON.stringify({ writeKey: p.tenant.writeKey, userId: 'u3', messageId: 'seg-11', traits: {} }) });
    expect(body.json()).toMatchObject({ success: true, accepted: 1 });
    const noEvent = await p.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basic }, payload: JSON.stringify({ userId: 'u2', messageId: 'seg-12' }) });
    // The producer's own field: a track call names its type in "event" (was '/type', sluice's field).
    expect(noEvent.json().rejected).toMatchObject([{ index: 0, code: 'missing_field', path: '/event' }]);
    // And the message says "event" too, the field the producer sets.
    expect(noEvent.json().rejected[0].message).toMatch(/^"event" /);
    const traits = await p.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic }, payload: JSON.stringify({ batch: [{ type: 'identify', userId: 'u4', messageId: 'seg-13', traits: 'pro' }] }) });
    expect(traits.json().rejected).toMatchObject([{ index: 0, path: '/batch/0/traits', message: expect.stringMatching(/^"traits" must be an object/) }]);
    const wrong = await p.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: 'Basic ' + Buffer.from('nope:').toString('base64') }, payload: '{}' });
    expect(wrong.statusCode).toBe(401);
    const readKey = await p.app.inject({ method: 'POST', url: '/v1/batch', payload: JSON.stringify({ writeKey: p.tenant.readKey, batch: [] }) });
    expect(readKey.statusCode).toBe(403);
    // A body read to find its write key (no Authorization header) is held to Segment's batch
    // limit, 500 KB decompressed, before anything is parsed: a 23 KB gzip of 9.7 MB took 0.5 s to answer 401.
    const bomb = zlib.gzipSync(JSON.stringify({ batch: Array.from({ length: 1_000 }, (_, i) => ({ type: 'track', event: 'x', messageId: `b${i}`, properties: { pad: 'x'.repeat(2_000) } })) }));
    const unsigned = await p.app.inject({ method: 'POST', url: '/v1/batch', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: bomb });
    expect(unsigned.statusCode).toBe(413);
    expect(unsigned.json()).toMatchObject({ code: 'SLUICE_ERR_BODY_TOO_LARGE' });
  });
});

describe('CloudEvents 1.0', () => {
  const headers = () => ({ authorization: `Bearer ${p.tenant.writeKey}` });

  it('cloudevents.sdk-binary-structured-and-batch-modes-land-as-events-once', async () => {
    const ce = (id: string, extra: Partial<{ subject: string; data: unknown }> = {}) =>
      new CloudEvent({ id, source: 'urn:shop:orders', type: 'com.example.order.placed', subject: 'order-9', time: new Date().toISOString(), data: { total: 99.5 }, ...extra });
    const binary = emitterFor(httpTransport(`${url}/v1/cloudevents`), { mode: Mode.BINARY });
    const structured = emitterFor(httpTransport(`${url}/v1/cloudevents`), { mode: Mode.STRUCTURED });
    const opts = { headers: headers() };
    await binary(ce('ce-1'), opts);
    await structured(ce('ce-2', { data: 'plain text' }), opts);
    await binary(ce('ce-1'), opts);
    const batch = HTTP.structured(ce('ce-3'));
    const r = await fetch(`${url}/v1/cloudevents`, {
      method: 'POST',
      headers: { ...headers(), 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify([
        JSON.parse(batch.body as string),
        { ...JSON.parse(batch.body as string), id: 'ce-4', subject: 'order-10' },
        // No subject: keyed by its source, not by an empty key shared by every such event.
        { specversion: '1.0', id: 'ce-5', source: 'urn:shop:payments', type: 'com.example.order.placed', data: { total: 1 } },
      ]),
    });
    expect(r.status).toBe(202);
    expect(await r.json()).toMatchObject({ accepted: 3 });
    const key = (id: string) => `urn:shop:orders#${id}`;
    await until(async () => (await stored(key('ce-4'))).status === 'stored');
    expect((await stored(key('ce-1'))).stored).toMatchObject({ type: 'com.example.order.placed', key: 'order-9', properties: { total: 99.5 }, context: { cloudevents: { source: 'urn:shop:orders', id: 'ce-1', specversion: '1.0' } } });
    expect((await stored(key('ce-2'))).stored).toMatchObject({ properties: { data: 'plain text' } });
    expect((await stored(key('ce-4'))).stored).toMatchObject({ key: 'order-10' });
    await until(async () => (await stored('urn:shop:payments#ce-5')).status === 'stored');
    expect((await stored('urn:shop:payments#ce-5')).stored).toMatchObject({ key: 'urn:shop:payments' });
    const types = (await p.store.searchEvents({ tenant: 'acme', type: 'com.example.order.placed', from: 0, to: Date.now() + 3_600_000, limit: 100 })).length;
    expect(types).toBe(5);
    // Source and id are kept apart in the key: ("urn:a", "b#c") and ("urn:a#b", "c") are two
    // events (both were the key "urn:a#b#c", and the second was answered as a duplicate).
    const one = (source: string, id: string) => ({ specversion: '1.0', id, source, type: 'com.example.hash', data: { source, id } });
    const pair = await fetch(`${url}/v1/cloudevents`, { method: 'POST', headers: { ...headers(), 'content-type': 'application/cloudevents-batch+json' }, body: JSON.stringify([one('urn:a', 'b#c'), one('urn:a#b', 'c')]) });
    expect(await pair.json()).toMatchObject({ accepted: 2, duplicates: 0 });
  });

  it('cloudevents.refuses-events-without-required-attributes-naming-them', async () => {
    const post = (ct: string, body: unknown, extra: Record<string, string> = {}) =>
      p.app.inject({ method: 'POST', url: '/v1/cloudevents', headers: { ...headers(), 'content-type': ct, ...extra }, payload: JSON.stringify(body) });
    expect((await post('application/cloudevents+json', { specversion: '1.0', source: 's', type: 't' })).json()).toMatchObject({ statusCode: 400, field: '/id' });
    // JSON pointers into the body, as every other refusal; in binary mode, the ce- header.
    expect((await post('application/json', { a: 1 }, { 'ce-specversion': '1.0', 'ce-id': '1', 'ce-type': 't' })).json()).toMatchObject({ statusCode: 400, field: 'ce-source' });
    expect((await post('application/cloudevents+json', { specversion: '0.3', id: '1', source: 's', type: 't' })).json()).toMatchObject({ field: '/specversion' });
    expect((await post('application/cloudevents-batch+json', [{ specversion: '1.0', id: '1', source: 's', type: 't' }, { specversion: '1.0', id: '2', type: 't' }])).json()).toMatchObject({ field: '/1/source' });
    expect((await post('application/json', { a: 1 })).statusCode).toBe(415);
    expect((await post('text/plain', { a: 1 }, { 'ce-specversion': '1.0', 'ce-id': '1', 'ce-source': 's', 'ce-type': 't' })).statusCode).toBe(415);
  });
});
