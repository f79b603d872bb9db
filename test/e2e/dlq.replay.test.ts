import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { balance } from '../../src/obs/conservation.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';
import { tmpDir } from '../helpers/tmp.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

function client(pipeline: Pipeline) {
  const call = async (method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, key: string, payload?: unknown) => {
    const res = await pipeline.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
    return { status: res.statusCode, body: res.json() as Record<string, any> };
  };
  const { writeKey, adminKey } = pipeline.tenant;
  return {
    send: (events: unknown) => call('POST', '/v1/events', writeKey, events),
    admin: (method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, payload?: unknown) => call(method, url, adminKey, payload),
  };
}

/** Every minute balances: received = stored + dead-lettered (not replayed) + rejected + duplicate. */
async function gaps(pipeline: Pipeline) {
  const far = Date.now() + 3_600_000;
  const b = balance(await pipeline.log.tallies(0, far), await pipeline.store.storedByMinute(0, far), await pipeline.catalog.deadLetters.byMinute(0, far));
  return b.filter((m) => m.gap !== 0);
}

const now = () => new Date().toISOString();

describe('dead letters and replay', () => {
  it('replay.schema-violation-is-dead-lettered-fixed-replayed-once-and-a-second-replay-changes-nothing', async () => {
    p = await startPipeline();
    const { send, admin } = client(p);
    const v1 = { type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } };
    const put = await admin('PUT', '/v1/schemas/checkout', { owner: 'payments', schema: v1 });
    expect(put.status).toBe(201);
    expect(put.body).toMatchObject({ version: 1, owner: 'payments', published: true });

    const events = [
      { type: 'checkout', key: 'u1', idempotency_key: 'c-1', ts: now(), properties: { amount: 10 } },
      { type: 'checkout', key: 'u2', idempotency_key: 'c-2', ts: now(), properties: { amount: '12.50' } },
      { type: 'checkout', key: 'u3', idempotency_key: 'c-3', ts: now(), properties: {} },
      { type: 'checkout', key: 'u4', idempotency_key: 'c-4', ts: now(), properties: { amount: 7 } },
    ];
    const r = await send(events);
    expect(r.status).toBe(202);
    expect(r.body).toEqual({
      accepted: 2,
      duplicates: 0,
      rejected: [
        { index: 1, code: 'schema_violation', path: '/properties/amount', message: '"amount" must be number', dead_lettered: true },
        { index: 2, code: 'schema_violation', path: '/properties/amount', message: '"amount" is required by the schema', dead_lettered: true },
      ],
    });
    // The same bad event again is a duplicate: its dead letter exists already.
    expect((await send([events[1]])).body).toEqual({ accepted: 0, duplicates: 1, rejected: [] });

    await until(async () => (await admin('GET', '/v1/dlq')).body.entries.length === 2);
    const list = await admin('GET', '/v1/dlq?reason=schema_violation');
    expect(list.body.entries.map((e: any) => [e.idempotency_key, e.status, e.schema_version, e.path])).toEqual(
      expect.arrayContaining([
        ['c-2', 'open', 1, '/properties/amount'],
        ['c-3', 'open', 1, '/properties/amount'],
      ]),
    );
    const shown = await admin('GET', '/v1/dlq/c-2');
    expect(shown.body).toMatchObject({ type: 'checkout', reason: 'schema_violation', origin: 'live', payload: { properties: { amount: '12.50' } } });
    const groups = await admin('GET', '/v1/dlq/groups');
    expect(groups.body.groups).toHaveLength(2);
    expect(groups.body.groups[0]).toMatchObject({ count: 1, reason: 'schema_violation', types: ['checkout'] });

    // Replaying before the fix: both fail again, stay open, nothing is appended.
    const early = await admin('POST', '/v1/dlq/replay', {});
    expect(early.body).toMatchObject({ matched: 2, replayed: 0, failed: 2 });

    // The fix: a compatible v2 that also takes amounts as strings and no longer requires one.
    const v2 = { type: 'object', properties: { amount: { type: ['number', 'string'] } } };
    const check = await admin('PUT', '/v1/schemas/checkout', { schema: v2, dry_run: true });
    expect(check.body).toMatchObject({ published: false, compatible: true, incompatibilities: [], version: 2 });
    expect((await admin('PUT', '/v1/schemas/checkout', { schema: v2 })).status).toBe(201);

    const dry = await admin('POST', '/v1/dlq/replay', { type: 'checkout', dry_run: true });
    expect(dry.body).toMatchObject({ matched: 2, replayed: 2, failed: 0, dry_run: true });
    const done = await admin('POST', '/v1/dlq/replay', { type: 'checkout' });
    expect(done.body).toMatchObject({ matched: 2, replayed: 2, failed: 0, duplicates: 0 });
    await until(async () => (await p!.store.rawStats('acme')).events === 4);

    // Twice changes nothing: not by filter, not by id, not asking for replayed entries.
    expect((await admin('POST', '/v1/dlq/replay', {})).body).toMatchObject({ matched: 0, replayed: 0 });
    expect((await admin('POST', '/v1/dlq/replay', { id: ['c-2', 'c-3'] })).body).toMatchObject({ matched: 0 });
    expect((await admin('POST', '/v1/dlq/replay', { id: ['c-2'], status: ['replayed'] })).body).toMatchObject({ matched: 0 });
    await new Promise((r) => setTimeout(r, 300));
    expect(await p.store.rawStats('acme')).toEqual({ events: 4, distinctKeys: 4 });
    expect((await admin('GET', '/v1/dlq/c-2')).body).toMatchObject({ status: 'replayed', replays: 1 });
    expect(await gaps(p)).toEqual([]);
    const audit = await admin('GET', '/v1/audit');
    expect(audit.body.entries.map((e: any) => e.action)).toEqual(expect.arrayContaining(['schema.publish', 'dlq.replay']));
  });

  it('replay.an-interrupted-replay-is-finished-by-the-next-without-a-second-copy', async () => {
    p = await startPipeline({}, { workers: true });
    const { send, admin } = client(p);
    await admin('PATCH', '/v1/tenant', { unknown_types: 'dead-letter' });
    await send([{ type: 'mystery', idempotency_key: 'm-1', ts: now() }]);
    await until(async () => (await admin('GET', '/v1/dlq')).body.entries.length === 1);
    await admin('PATCH', '/v1/tenant', { unknown_types: 'accept' });
    // A replay that appended generation 1 and crashed before marking the entry replayed:
    const row = (await p.catalog.deadLetters.get('acme', 'm-1'))!;
    const payload = JSON.parse(row.payload);
    const [outcome] = await p.log.append([{ tenant: 'acme', type: 'mystery', key: '', idempotencyKey: 'm-1', ts: Date.parse(payload.ts), receivedAt: row.receivedAt, partition: row.partition, origin: 'replay', properties: '{}', context: '{}', replay: 1 }]);
    expect(outcome!.status).toBe('appended');
    const again = await admin('POST', '/v1/dlq/replay', {});
    expect(again.body).toMatchObject({ matched: 1, replayed: 0, duplicates: 1 });
    await until(async () => (await p!.store.rawStats('acme')).events === 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(await p.store.rawStats('acme')).toEqual({ events: 1, distinctKeys: 1 });
    expect(await gaps(p)).toEqual([]);
  });

  it('discard.needs-a-reason-and-keeps-it-in-the-audit-log', async () => {
    p = await startPipeline();
    const { send, admin } = client(p);
    await admin('PUT', '/v1/schemas/a', { owner: 'core', schema: { type: 'object', properties: { n: { type: 'integer' } } } });
    await send([1, 2, 3].map((i) => ({ type: 'a', idempotency_key: `a-${i}`, ts: now(), properties: { n: 'x' } })));
    await until(async () => (await admin('GET', '/v1/dlq')).body.entries.length === 3);
    expect((await admin('POST', '/v1/dlq/discard', { type: 'a' })).status).toBe(400);
    expect((await admin('POST', '/v1/dlq/discard', { reason_for_discard: 'test data' })).status).toBe(400);
    const [group] = (await admin('GET', '/v1/dlq/groups')).body.groups;
    // Discarding every entry of a group resolves it, as replaying them does.
    expect((await admin('POST', '/v1/dlq/discard', { type: 'a', reason_for_discard: 'test data from a load test' })).body).toEqual({ discarded: 3, resolved_groups: [group.group] });
    expect((await admin('GET', `/v1/dlq/groups/${encodeURIComponent(group.group)}`)).body).toMatchObject({ status: 'resolved' });
    expect((await admin('GET', '/v1/dlq')).body.entries).toEqual([]);
    expect((await admin('POST', '/v1/dlq/replay', {})).body).toMatchObject({ matched: 0 });
    const audit = await admin('GET', '/v1/audit');
    expect(audit.body.entries.find((e: { action: string }) => e.action === 'dlq.discard')).toMatchObject({ detail: { discarded: 3, reason: 'test data from a load test' } });
    expect(await gaps(p)).toEqual([]);
  });
});

describe('the dead-letter breaker', () => {
  it('breaker.a-bad-deploy-pauses-the-tenant-holds-its-events-and-resume-replays-them-exactly-once', async () => {
    const dir = tmpDir();
    const flag = path.join(dir, 'broken');
    const plugin = path.join(dir, 'tax.mjs');
    fs.writeFileSync(
      plugin,
      `import fs from 'node:fs';
       export default (options) => ({
         name: 'tax',
         enrich(batch) {
           const broken = fs.existsSync(options.flag);
           return batch.map((e) => broken ? { ok: false, permanent: true, message: 'tax table missing for ' + e.key } : { ok: true, properties: { ...e.properties, tax: 0.2 } });
         },
       });`,
    );
    fs.writeFileSync(flag, '');
    p = await startPipeline({ enrich: { plugins: [{ module: plugin, options: { flag } }] }, breaker: { window: 50, minEvents: 20, ratio: 0.5 }, worker: { readBatch: 10, commitBatch: 10 } });
    const { send, admin } = client(p);
    const events = Array.from({ length: 200 }, (_, i) => ({ type: 'order', key: `k${i}`, idempotency_key: `o-${i}`, ts: now() }));
    for (let i = 0; i < 200; i += 20) expect((await send(events.slice(i, i + 20))).body.accepted).toBe(20);

    await until(async () => (await admin('GET', '/v1/tenant')).body.settings.paused !== null);
    await until(async () => {
      const c = await p!.catalog.deadLetters.counts('acme');
      return (c.held ?? 0) + (c.enrich_failed ?? 0) === 200;
    });
    const counts = await p.catalog.deadLetters.counts('acme');
    // It tripped early: most events were held, not dead-lettered.
    expect(counts.enrich_failed).toBeLessThan(60);
    expect(counts.held).toBeGreaterThan(140);
    expect((await p.store.rawStats('acme')).events).toBe(0);

    fs.rmSync(flag); // the fix is deployed
    const resumed = await admin('POST', '/v1/tenant/resume');
    expect(resumed.body).toMatchObject({ held: counts.held, settings: { paused: null } });
    await until(async () => (await p!.store.rawStats('acme')).events === counts.held);
    const replayed = await admin('POST', '/v1/dlq/replay', { reason: 'enrich_failed' });
    expect(replayed.body).toMatchObject({ replayed: counts.enrich_failed, failed: 0 });
    await until(async () => (await p!.store.rawStats('acme')).events === 200);
    await new Promise((r) => setTimeout(r, 300));
    expect(await p.store.rawStats('acme')).toEqual({ events: 200, distinctKeys: 200 });
    expect(await p.catalog.deadLetters.counts('acme')).toEqual({});
    expect(await gaps(p)).toEqual([]);
  });
});
