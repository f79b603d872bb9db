import { afterEach, describe, expect, it } from 'vitest';
import { balance } from '../../src/obs/conservation.js';
import { hashValue } from '../../src/transform/run.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

function client(pipeline: Pipeline) {
  const call = async (method: 'GET' | 'POST' | 'PUT', url: string, key: string, payload?: unknown) => {
    const res = await pipeline.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
    return { status: res.statusCode, body: res.json() as Record<string, any> };
  };
  const { writeKey, readKey, adminKey } = pipeline.tenant;
  return {
    send: (events: unknown) => call('POST', '/v1/events', writeKey, events),
    read: (method: 'GET' | 'POST', url: string, payload?: unknown) => call(method, url, readKey, payload),
    admin: (method: 'GET' | 'POST' | 'PUT', url: string, payload?: unknown) => call(method, url, adminKey, payload),
  };
}

const STEPS = [
  { cast: { field: 'properties.amount', to: 'number' } },
  { set: { field: 'properties.amount_cents', value: 'int(properties.amount * 100.0)' }, when: 'has(properties.amount)' },
  { rename: { from: 'properties.userID', to: 'properties.user_id' } },
  { remove: { fields: ['context.ip'] } },
  { redact: { fields: ['properties.email'], how: 'hash' } },
  { drop: { when: 'has(properties.bot) && properties.bot == true' } },
  { dead_letter: { when: '!has(properties.order_id)', reason: 'missing_order_id' }, types: ['checkout'] },
];

const now = () => new Date().toISOString();

describe('transform pipeline versions', () => {
  it('transform.put-checks-versions-and-the-workers-apply-each-version-and-record-it', async () => {
    p = await startPipeline({ events: { schemaRefreshMs: 100 } });
    const { send, read, admin } = client(p);

    // A step that does not compile: 400 naming the step and its position; nothing written.
    const bad = await admin('PUT', '/v1/pipeline', { steps: [STEPS[0], { set: { field: 'properties.x', value: 'int(properties.amount' } }] });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/^step 1 \(set\): value: /);
    expect(bad.body.field).toBe('steps[1]');
    expect((await admin('GET', '/v1/pipeline')).body).toMatchObject({ version: 0, steps: [] });
    expect((await read('GET', '/v1/pipeline')).status).toBe(403);

    const put = await admin('PUT', '/v1/pipeline', { steps: STEPS, expected_version: 0 });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ version: 1, steps: STEPS });
    const stale = await admin('PUT', '/v1/pipeline', { steps: [], expected_version: 0 });
    expect(stale.status).toBe(409);
    expect(stale.body.field).toBe('expected_version');
    expect(stale.body.message).toMatch(/is at version 1, not 0: someone changed it meanwhile/);
    // A version from the future is no one's change: the message says so.
    const ahead = await admin('PUT', '/v1/pipeline', { steps: [], expected_version: 3 });
    expect(ahead.status).toBe(409);
    expect(ahead.body.message).toMatch(/is at version 1, not 3: no version 3 exists yet/);
    expect((await admin('GET', '/v1/pipeline/versions')).body.versions.map((v: any) => [v.version, v.step_count])).toEqual([[1, 7]]);
    expect((await admin('GET', '/v1/pipeline/versions/1')).body.steps).toEqual(STEPS);
    expect((await admin('GET', '/v1/pipeline/versions/2')).status).toBe(404);
    const audit = (await admin('GET', '/v1/audit?subject=pipeline:1')).body.entries;
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: 'pipeline.put', detail: { steps: 7 } });
    expect(audit[0].detail.diff).toHaveLength(7);

    // The test endpoint runs a version over given events and writes nothing.
    const tested = await admin('POST', '/v1/pipeline/test', {
      version: 1,
      events: [
        { type: 'checkout', key: 'u1', properties: { amount: '12.5', order_id: 'o1', userID: 'u1', email: 'a@example.com' }, context: { ip: '203.0.113.9' } },
        { type: 'checkout', key: 'u2', properties: { amount: 3, bot: true, order_id: 'o2' } },
        { type: 'checkout', key: 'u3', properties: { amount: 3 } },
        { type: 'checkout', key: 'u4', properties: { amount: 'lots', order_id: 'o4' } },
      ],
    });
    expect(tested.status).toBe(200);
    const salt = await p.catalog.pipelines.salt('acme');
    expect(tested.body.results[0]).toMatchObject({
      outcome: 'stored',
      output: { properties: { amount: 12.5, amount_cents: 1250, order_id: 'o1', user_id: 'u1', email: hashValue('a@example.com', salt) }, context: {} },
      changed: ['properties.amount', 'properties.amount_cents', 'properties.userID', 'properties.user_id', 'context.ip', 'properties.email'],
    });
    expect(tested.body.results.slice(1).map((r: any) => [r.outcome, r.reason ?? null, r.output])).toEqual([
      ['dropped', 'dropped', null],
      ['dead_lettered', 'missing_order_id', null],
      ['dead_lettered', 'transform_failed', null],
    ]);
    const inline = await admin('POST', '/v1/pipeline/test', { pipeline: { steps: [{ drop: { when: 'type == "checkout"' } }] }, events: [{ type: 'checkout' }, { type: 'signup' }] });
    expect(inline.body.results.map((r: any) => r.outcome)).toEqual(['dropped', 'stored']);
    const refused = await admin('POST', '/v1/pipeline/test', { pipeline: { steps: [{ drop: {} }] }, events: [] });
    expect(refused.status).toBe(400);
    expect(refused.body.message).toMatch(/^step 0 \(drop\)/);
    expect(await p.store.rawStats('acme')).toEqual({ events: 0, distinctKeys: 0 });

    // Live traffic goes through version 1.
    const r = await send([
      { type: 'checkout', key: 'u1', idempotency_key: 'e1', ts: now(), properties: { amount: '12.5', order_id: 'o1', email: 'a@example.com' }, context: { ip: '203.0.113.9' } },
      { type: 'checkout', key: 'u2', idempotency_key: 'e2', ts: now(), properties: { amount: 1, order_id: 'o2', bot: true } },
      { type: 'checkout', key: 'u3', idempotency_key: 'e3', ts: now(), properties: { amount: 1 } },
      { type: 'checkout', key: 'u4', idempotency_key: 'e4', ts: now(), properties: { amount: 'lots', order_id: 'o4' } },
      { type: 'signup', key: 'u5', idempotency_key: 'e5', ts: now(), properties: {} },
    ]);
    expect(r.status).toBe(202);
    await until(async () => (await p!.store.rawStats('acme')).events === 2 && (await p!.catalog.deadLetters.counts('acme')).transform_failed === 1);
    const e1 = (await read('GET', '/v1/events/e1')).body.stored;
    expect(e1).toMatchObject({ pipeline_version: 1, properties: { amount: 12.5, amount_cents: 1250, order_id: 'o1', email: hashValue('a@example.com', salt) }, context: {} });
    expect((await read('GET', '/v1/events/e5')).body.stored.pipeline_version).toBe(1);
    expect(await p.catalog.deadLetters.get('acme', 'e2')).toMatchObject({ status: 'discarded', reason: 'dropped' });
    expect(await p.catalog.deadLetters.get('acme', 'e3')).toMatchObject({ status: 'open', reason: 'missing_order_id' });
    const failed = await p.catalog.deadLetters.get('acme', 'e4');
    expect(failed).toMatchObject({ status: 'open', reason: 'transform_failed' });
    expect(failed!.message).toBe('step 0 (cast): cannot cast a string of 4 characters to number (pipeline version 1)');

    // Version 2 takes effect within events.schemaRefreshMs; each event says which version made it.
    expect((await admin('PUT', '/v1/pipeline', { steps: [{ set: { field: 'properties.v', value: '2' } }], expected_version: 1 })).body.version).toBe(2);
    await new Promise((res) => setTimeout(res, 250));
    await send([{ type: 'checkout', key: 'u6', idempotency_key: 'e6', ts: now(), properties: { amount: '5' } }]);
    await until(async () => (await p!.store.rawStats('acme')).events === 3);
    expect((await read('GET', '/v1/events/e6')).body.stored).toMatchObject({ pipeline_version: 2, properties: { amount: '5', v: 2 } });

    // A sample of stored events: the last N of a type, through a given version; nothing written.
    const sampled = await admin('POST', '/v1/pipeline/test', { version: 1, sample: { type: 'checkout', last: 10 } });
    expect(sampled.status).toBe(200);
    expect(sampled.body.results).toHaveLength(2);
    // e1 (made by version 1) passes it again; e6 (made by version 2) has no order id.
    expect(sampled.body.results.map((r: any) => r.outcome).sort()).toEqual(['dead_lettered', 'stored']);
    expect(await p.store.rawStats('acme')).toEqual({ events: 3, distinctKeys: 3 });

    // pipeline_version is a field of the query language.
    const q = await read('POST', '/v1/query', { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3_600_000).toISOString(), interval: null, group_by: ['pipeline_version'], measures: ['count'], order_by: 'pipeline_version' });
    expect(q.status).toBe(200);
    expect(q.body.rows).toEqual([
      ['1', 2],
      ['2', 1],
    ]);
    const only2 = await read('POST', '/v1/query', { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3_600_000).toISOString(), interval: null, filters: [{ field: 'pipeline_version', op: 'eq', value: 2 }], measures: ['count'] });
    expect(only2.body.rows).toEqual([[1]]);

    // Nothing lost: every received event is stored or dead-lettered (drops as discarded).
    const far = Date.now() + 3_600_000;
    const gaps = balance(await p.log.tallies(0, far), await p.store.storedByMinute(0, far), await p.catalog.deadLetters.byMinute(0, far)).filter((m) => m.gap !== 0);
    expect(gaps).toEqual([]);
  });

  it('transform.a-version-that-fails-most-events-trips-the-breaker-instead-of-dead-lettering-the-world', async () => {
    p = await startPipeline();
    const { send, admin } = client(p);
    expect((await admin('PUT', '/v1/pipeline', { steps: [{ cast: { field: 'properties.amount', to: 'number' } }] })).status).toBe(200);
    const ts = now();
    for (let b = 0; b < 5; b++) {
      await send(Array.from({ length: 100 }, (_, i) => ({ type: 'checkout', key: `u${i}`, idempotency_key: `b${b}-${i}`, ts, properties: { amount: 'not a number' } })));
    }
    await until(async () => (await p!.catalog.settings('acme')).paused !== null);
    expect((await p.catalog.settings('acme')).paused!.reason).toMatch(/dead-lettered by the pipeline/);
    // Once paused, the rest is held, not dead-lettered: far fewer than 500 dead letters.
    await until(async () => {
      const c = await p!.catalog.deadLetters.counts('acme');
      return (c.transform_failed ?? 0) + (c.held ?? 0) === 500;
    });
    const counts = await p.catalog.deadLetters.counts('acme');
    expect(counts.held).toBeGreaterThan(0);
    expect(counts.transform_failed ?? 0).toBeLessThan(500);
  });

  it('transform.a-first-batch-of-failures-larger-than-min-events-is-held-not-dead-lettered', async () => {
    p = await startPipeline();
    const { send, admin } = client(p);
    expect((await admin('PUT', '/v1/pipeline', { steps: [{ cast: { field: 'properties.amount', to: 'number' } }] })).status).toBe(200);
    // One request of 300 failing events (breaker.minEvents is 100): the batch that trips the
    // breaker is judged before it is written, so none of it is dead-lettered.
    const ts = now();
    await send(Array.from({ length: 300 }, (_, i) => ({ type: 'checkout', key: `u${i}`, idempotency_key: `one-${i}`, ts, properties: { amount: 'not a number' } })));
    await until(async () => {
      const c = await p!.catalog.deadLetters.counts('acme');
      return (c.transform_failed ?? 0) + (c.held ?? 0) === 300;
    });
    expect((await p.catalog.settings('acme')).paused?.reason).toMatch(/dead-lettered by the pipeline/);
    // Each batch the worker read is judged whole: what it read before the trip can be
    // dead-lettered only while the breaker has seen fewer than minEvents.
    expect((await p.catalog.deadLetters.counts('acme')).transform_failed ?? 0).toBeLessThan(100);
    // Held as the log delivered them, not as the pipeline left them (the resume runs it again).
    const [heldOne] = (await p.catalog.deadLetters.list('acme', { status: ['held'] }, 1)).entries;
    expect(JSON.parse(heldOne!.payload).properties).toEqual({ amount: 'not a number' });
    // "Did my event arrive?" says what brings a held event back: the resume, not a replay.
    const asked = await client(p).read('GET', `/v1/events/${heldOne!.idempotencyKey}`);
    expect(asked.body).toMatchObject({ status: 'dead_lettered', explanation: expect.stringMatching(/held while the tenant is paused.*POST \/v1\/tenant\/resume/) });

    // The fix, then resume: the held events go through the fixed pipeline, each stored once.
    expect((await admin('PUT', '/v1/pipeline', { steps: [{ set: { field: 'properties.amount', value: '0.0' } }] })).status).toBe(200);
    expect((await admin('POST', '/v1/tenant/resume')).status).toBe(200);
    const held = (await p.catalog.deadLetters.counts('acme')).held ?? 0;
    await until(async () => (await p!.store.rawStats('acme')).events === held).catch(async (e: unknown) => {
      throw new Error(`${String(e)}: held ${held}, stored ${JSON.stringify(await p!.store.rawStats('acme'))}, dead letters ${JSON.stringify(await p!.catalog.deadLetters.counts('acme'))}, settings ${JSON.stringify(await p!.catalog.settings('acme'))} ${JSON.stringify((await p!.catalog.deadLetters.list('acme', {}, 3)).entries.map((e: any) => [e.reason, e.message, e.record?.origin]))}`);
    });
    expect(await p.store.rawStats('acme')).toEqual({ events: held, distinctKeys: held });
  });
});
