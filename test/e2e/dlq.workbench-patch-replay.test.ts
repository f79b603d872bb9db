import { afterEach, describe, expect, it } from 'vitest';
import { balance } from '../../src/obs/conservation.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

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
  const { writeKey, readKey, adminKey } = pipeline.tenant;
  return {
    send: (events: unknown) => call('POST', '/v1/events', writeKey, events),
    read: (method: 'GET' | 'POST', url: string, payload?: unknown) => call(method, url, readKey, payload),
    admin: (method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, payload?: unknown) => call(method, url, adminKey, payload),
  };
}

const CAST = { steps: [{ cast: { field: 'properties.amount', to: 'number' } }] };

describe('dead-letter workbench', () => {
  it('workbench.a-cast-patch-predicts-n-the-replay-stores-exactly-n-and-a-second-replay-changes-nothing', async () => {
    p = await startPipeline();
    const { send, read, admin } = client(p);
    const schema = { type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } };
    expect((await admin('PUT', '/v1/schemas/checkout', { owner: 'payments', schema })).status).toBe(201);

    const ts = new Date().toISOString();
    const events = [
      // 30 amounts sent as strings: the schema refuses them; a cast fixes them.
      ...Array.from({ length: 30 }, (_, i) => ({ type: 'checkout', key: `u${i}`, idempotency_key: `s-${i}`, ts, properties: { amount: `${i}.5` } })),
      // 5 that no cast fixes, 3 without an amount at all, 10 good ones.
      ...Array.from({ length: 5 }, (_, i) => ({ type: 'checkout', key: `x${i}`, idempotency_key: `x-${i}`, ts, properties: { amount: 'lots' } })),
      ...Array.from({ length: 3 }, (_, i) => ({ type: 'checkout', key: `m${i}`, idempotency_key: `m-${i}`, ts, properties: {} })),
      ...Array.from({ length: 10 }, (_, i) => ({ type: 'checkout', key: `g${i}`, idempotency_key: `g-${i}`, ts, properties: { amount: i } })),
    ];
    expect((await send(events)).body).toMatchObject({ accepted: 10 });
    await until(async () => (await p!.catalog.deadLetters.counts('acme')).schema_violation === 38 && (await p!.store.rawStats('acme')).events === 10);

    const groups = (await admin('GET', '/v1/dlq/groups')).body.groups;
    const wrongType = groups.find((g: any) => g.count === 35)!;
    expect(wrongType).toMatchObject({ reason: 'schema_violation', path: '/properties/amount', status: 'open', owner: 'payments', history: [] });

    // The group is acknowledged by its owner, with a note.
    const ack = await admin('PATCH', `/v1/dlq/groups/${encodeURIComponent(wrongType.group)}`, { status: 'acknowledged', note: 'amounts sent as strings by app 4.2' });
    expect(ack.status).toBe(200);
    expect(ack.body).toMatchObject({ status: 'acknowledged', owner: null, history: [{ status: 'acknowledged', note: 'amounts sent as strings by app 4.2' }] });
    expect((await admin('PATCH', `/v1/dlq/groups/${encodeURIComponent(wrongType.group)}`, { status: 'sleeping' })).status).toBe(400);
    expect((await admin('PATCH', '/v1/dlq/groups/no-such-group', { status: 'acknowledged' })).status).toBe(404);

    // The dry run predicts over the whole selection (three pages of 10 and more), writing nothing.
    const dry = await admin('POST', '/v1/dlq/replay', { dry_run: true, limit: 10, patch: CAST });
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ dry_run: true, matched: 38, would_pass: 30, failed: 8 });
    expect(dry.body.would_fail.map((f: any) => [f.reason, f.field, f.count, f.samples.length])).toEqual([
      ['transform_failed', '', 5, 3],
      ['schema_violation', '/amount', 3, 3],
    ]);
    expect(await p.store.rawStats('acme')).toEqual({ events: 10, distinctKeys: 10 });
    // A patch that does not compile: 400 naming the step.
    const badPatch = await admin('POST', '/v1/dlq/replay', { dry_run: true, patch: { steps: [{ cast: { field: 'properties.amount', to: 'money' } }] } });
    expect(badPatch.status).toBe(400);
    expect(badPatch.body.message).toMatch(/^step 0 \(cast\)/);

    // The replay stores exactly the predicted 30, with their original keys.
    const run = await admin('POST', '/v1/dlq/replay', { group: wrongType.group, patch: CAST });
    expect(run.body).toMatchObject({ matched: 35, replayed: 30, failed: 5, resolved_groups: [] });
    await until(async () => (await p!.store.rawStats('acme')).events === 40);
    expect((await read('GET', '/v1/events/s-7')).body.stored).toMatchObject({ origin: 'replay', properties: { amount: 7.5 } });
    // The entries the patch could not fix keep their reason.
    expect(await p.catalog.deadLetters.get('acme', 'x-0')).toMatchObject({ status: 'open', reason: 'schema_violation' });
    const audit = (await admin('GET', '/v1/audit?limit=5')).body.entries.find((e: any) => e.action === 'dlq.replay');
    expect(audit.detail.patch).toEqual(CAST);

    // A second replay changes nothing.
    const again = await admin('POST', '/v1/dlq/replay', { group: wrongType.group, patch: CAST });
    expect(again.body).toMatchObject({ matched: 5, replayed: 0, duplicates: 0, failed: 5 });
    await new Promise((r) => setTimeout(r, 300));
    expect(await p.store.rawStats('acme')).toEqual({ events: 40, distinctKeys: 40 });

    // The rest of the group fixed another way: every entry replayed, the group is resolved.
    const rest = await admin('POST', '/v1/dlq/replay', { group: wrongType.group, patch: { steps: [{ set: { field: 'properties.amount', value: '0.0' } }] } });
    expect(rest.body).toMatchObject({ replayed: 5, resolved_groups: [wrongType.group] });
    await until(async () => (await p!.store.rawStats('acme')).events === 45);
    const after = (await admin('GET', `/v1/dlq/groups?status=replayed`)).body.groups;
    expect(after.find((g: any) => g.group === wrongType.group)).toMatchObject({ status: 'resolved' });
    // One group by its signature, whatever its entries' statuses, with its history.
    const one = await admin('GET', `/v1/dlq/groups/${encodeURIComponent(wrongType.group)}`);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ group: wrongType.group, status: 'resolved', count: 35, reason: 'schema_violation', path: '/properties/amount' });
    expect(one.body.history.map((h: any) => h.status)).toEqual(['acknowledged', 'resolved']);
    expect((await admin('GET', '/v1/dlq/groups/no-such-group')).status).toBe(404);
    // Groups by their own status (not their entries'): the resolved one, and nothing else.
    expect((await admin('GET', '/v1/dlq/groups?group_status=resolved')).body.groups.map((g: any) => g.group)).toEqual([wrongType.group]);
    expect((await admin('GET', '/v1/dlq/groups?group_status=ignored')).body.groups).toEqual([]);
    const mixedUp = await admin('GET', '/v1/dlq/groups?status=resolved');
    expect(mixedUp.status).toBe(400);
    expect(mixedUp.body.message).toMatch(/a group's own status .* is filtered with "group_status" \(sluice dlq groups --group-status\)/);

    // Queries count each event once; nothing is lost or doubled.
    const q = await read('POST', '/v1/query', { event: 'checkout', from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 3_600_000).toISOString(), interval: null, measures: ['count'] });
    expect(q.body.rows).toEqual([[45]]);
    const far = Date.now() + 3_600_000;
    expect(balance(await p.log.tallies(0, far), await p.store.storedByMinute(0, far), await p.catalog.deadLetters.byMinute(0, far)).filter((m) => m.gap !== 0)).toEqual([]);
  });

  it('workbench.the-dry-run-counts-what-the-live-pipeline-will-drop-and-the-replay-stores-exactly-the-prediction', async () => {
    p = await startPipeline();
    const { send, admin } = client(p);
    const schema = { type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } };
    expect((await admin('PUT', '/v1/schemas/checkout', { owner: 'payments', schema })).status).toBe(201);
    const ts = new Date().toISOString();
    await send(Array.from({ length: 20 }, (_, i) => ({ type: 'checkout', key: i < 4 ? 'bot' : `u${i}`, idempotency_key: `s-${i}`, ts, properties: { amount: `${i}` } })));
    await until(async () => (await p!.catalog.deadLetters.counts('acme')).schema_violation === 20);
    // The live pipeline drops the bot's events: the workers will drop those replayed too.
    expect((await admin('PUT', '/v1/pipeline', { steps: [{ drop: { when: 'key == "bot"' } }] })).body.version).toBe(1);

    const dry = await admin('POST', '/v1/dlq/replay', { dry_run: true, patch: CAST });
    expect(dry.body).toMatchObject({ matched: 20, would_pass: 16, failed: 4 });
    expect(dry.body.would_fail.map((f: any) => [f.reason, f.count])).toEqual([['dropped', 4]]);

    await admin('POST', '/v1/dlq/replay', { patch: CAST });
    await until(async () => (await p!.store.rawStats('acme')).events === 16 && (await p!.catalog.deadLetters.list('acme', { status: ['discarded'] }, 100)).entries.length === 4);
    await new Promise((r) => setTimeout(r, 300));
    expect(await p.store.rawStats('acme')).toEqual({ events: 16, distinctKeys: 16 });
  });
});

describe('dead-letter replay with a costly patch', () => {
  it('workbench.a-costly-patch-fails-each-entry-within-its-budget-and-other-requests-are-served-meanwhile', async () => {
    p = await startPipeline();
    const { send, admin } = client(p);
    expect((await admin('PUT', '/v1/schemas/u', { owner: 't1', schema: { type: 'object', required: ['req'] } })).status).toBe(201);
    const ts = new Date().toISOString();
    // Five entries of 16,000 items each, dead-lettered at the door (no "req").
    await send(Array.from({ length: 5 }, (_, i) => ({ type: 'u', key: `k${i}`, idempotency_key: `big-${i}`, ts, properties: { l: Array(16_000).fill(0) } })));
    await until(async () => (await p!.catalog.deadLetters.counts('acme')).schema_violation === 5);
    // The attacker's patch: 100 steps, each a comprehension of 190 nodes a turn over the list
    // (10 s an entry, 47 s of every tenant's requests held by a dry run of five).
    const body = Array.from({ length: 95 }, () => 'x * 1.5').join(' + ');
    const patch = { steps: Array.from({ length: 100 }, () => ({ drop: { when: `properties.l.exists(x, ${body} < -1.0)` } })) };
    let worst = 0;
    let pinging = true;
    const pings = (async () => {
      while (pinging) {
        const t0 = performance.now();
        await p!.app.inject({ method: 'GET', url: '/healthz' });
        worst = Math.max(worst, performance.now() - t0);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const t0 = performance.now();
    const dry = await admin('POST', '/v1/dlq/replay', { dry_run: true, patch });
    const took = performance.now() - t0;
    pinging = false;
    await pings;
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ matched: 5, failed: 5, would_pass: 0 });
    expect(dry.body.failures[0].message).toMatch(/patch: step 0 \(drop\): exists: its body .* past the limit of 2,000,000 steps/);
    expect(took).toBeLessThan(5_000);
    expect(worst).toBeLessThan(1_000);
  });
});
