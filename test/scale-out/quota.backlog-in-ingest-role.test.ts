import { expect, it } from 'vitest';
import { deployments, drained, type Deployment } from '../helpers/scale-out.js';
import { until } from '../helpers/pipeline.js';
import { natsAvailable, postgresAvailable } from '../helpers/services.js';

/**
 * The per-tenant backlog cap (quotas.backlog: events accepted and not yet processed) in a
 * `sluice ingest` process, whose events are processed by workers in other processes. It
 * counted what the process accepted and never what the workers finished, so a tenant that
 * had sent more than its cap through one ingest process over its whole life was refused
 * (429) for ever, however fast the workers kept up: with the default cap of 1,000,000, a
 * tenant's millionth event. The ingest process now releases what it appended as the worker
 * group's committed offsets pass it (ingest/committed-backlog.ts).
 */
const ready = (await natsAvailable()) && (await postgresAvailable());
const { deployed } = deployments();
const CAP = 2_000;
const BATCH = 500;

it.runIf(ready)('quota.an-ingest-process-counts-its-tenants-backlog-down-as-workers-commit-and-still-refuses-past-the-cap', async () => {
  const d = await deployed({ partitions: 4, env: { SLUICE_QUOTAS_BACKLOG: String(CAP) } });
  const ingest = await d.start('ingest');
  // The test's one NATS server holds one replica: said in the log at start, as `sluice doctor` says it.
  expect(ingest.stderr).toContain("log.replicas is 1: the stream's records live on one server; losing its disk loses acknowledged events. Production runs 3 on a 3-node cluster (SLUICE_LOG_REPLICAS=3)");
  const producer = producerOf(d, () => ingest.url);
  const { send, currentBacklog } = producer;

  // No worker yet: the cap holds. Four batches fill it, the fifth is refused, naming the cap.
  for (let i = 0; i < CAP / BATCH; i++) expect((await send()).status).toBe(202);
  const refused = await send();
  expect(refused.status).toBe(429);
  expect(refused.body.field).toBe('backlog');
  expect(await currentBacklog()).toBe(CAP);
  // The log's backlog as /v1/status and /metrics give it: the events waiting, once each. (Offsets
  // on NATS are the stream's sequence, shared by the partitions: head − committed per partition
  // counted the others' events too, 4 times over here, 16 with the default partitions.)
  // (Counted by the server at most every 10 s per partition: polled.)
  const logStatus = async () =>
    ((await (await fetch(`${ingest.url}/v1/status`, { headers: { authorization: `Bearer ${d.tenant.adminKey}` } })).json()) as { log: { backlog_events: number; partitions: { lag_events: number }[] } }).log;
  await until(async () => (await logStatus()).backlog_events === CAP, 25_000);
  expect((await logStatus()).partitions.reduce((s, p) => s + p.lag_events, 0)).toBe(CAP);
  await until(async () => /^sluice_log_backlog_events(\{[^}]*\})? 2000$/m.test(await (await fetch(`${ingest.url}/metrics`)).text()), 25_000);

  // Workers store the backlog: the count comes down, and ten times the cap then goes through,
  // each batch counted down once the workers have committed it.
  const workers = await Promise.all([d.start('worker'), d.start('worker')]);
  await until(async () => (await currentBacklog()) === 0, 60_000);
  // A worker process labels what it stores with the tenant's name: it sees no ingest request to
  // choose labels from, and every tenant was labelled sluice_other there.
  const stored = (await Promise.all(workers.map(async (w) => (await fetch(`${w.url}/metrics`)).text()))).join('\n');
  expect(stored).toMatch(/^sluice_events_stored_total\{tenant="acme"\} [1-9]\d*$/m);
  expect(stored).not.toContain('tenant="sluice_other"');
  // Asked of the wrong role, a process says which role serves it.
  const wrong = async (url: string, method: string, path: string) => ((await (await fetch(`${url}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(method === 'POST' ? { body: '{}' } : {}) })).json()) as { message: string }).message;
  expect(await wrong(ingest.url, 'POST', '/v1/query')).toBe('no route POST /v1/query; this process only ingests: ask a query process (sluice query, or sluice up) for the API and the console');
  expect(await wrong(workers[0]!.url, 'POST', '/v1/events')).toMatch(/^no route POST \/v1\/events; this process is a worker \(health, status and metrics only\): send events to an ingest process/);
  // Generous waits: beside the kill-9 suite on the same two cores and NATS server, a batch once
  // took over a minute to be stored, and once three (drained: fails on two minutes without
  // progress). What is asserted is that the count comes down, not how fast.
  const within = (what: string, ms: number, fn: () => Promise<boolean>) =>
    until(fn, ms).catch(async (e: unknown) => {
      throw new Error(`${what}: ${String(e)}; stored ${JSON.stringify(await d.stored())}, sent ${producer.sent}, backlog ${await currentBacklog()}\n${d.logs()}\n${await d.diagnose()}`);
    });
  for (let i = 0; i < (10 * CAP) / BATCH; i++) {
    const r = await send();
    expect(r.status, `batch ${i}: ${JSON.stringify(r.body)}`).toBe(202);
    await drained(d, producer.sent, `batch ${i} stored`);
    // Released within about a second of the workers' commit (two refreshes of the positions).
    await within(`batch ${i} released`, 30_000, async () => (await currentBacklog()) === 0);
  }
  expect(producer.sent).toBe(11 * CAP);
  expect(await d.stored()).toEqual({ rows: producer.sent, keys: producer.sent });
}, 900_000);

it.runIf(ready)('quota.a-restarted-ingest-process-inherits-the-backlog-refuses-past-the-cap-and-releases-it-as-workers-commit', async () => {
  const d = await deployed({ partitions: 4, env: { SLUICE_QUOTAS_BACKLOG: String(CAP) } });
  let ingest = await d.start('ingest');
  const producer = producerOf(d, () => ingest.url);
  const send = async () => (await producer.send()).status;
  const status = async () => {
    const r = await fetch(`${ingest.url}/v1/status`, { headers: { authorization: `Bearer ${d.tenant.adminKey}` } });
    return (await r.json()) as { quota: { current_backlog: number } };
  };
  for (let i = 0; i < CAP / BATCH; i++) expect(await send()).toBe(202);
  expect(await send()).toBe(429);

  // A new process counts what the log holds at its start: still at the cap, still refused.
  ingest.child.kill('SIGTERM');
  await ingest.exited;
  ingest = await d.start('ingest');
  expect(await send()).toBe(429);
  expect((await status()).quota.current_backlog).toBe(CAP);

  // Workers (of other processes) commit it: the inherited count is released, room again.
  await Promise.all([d.start('worker'), d.start('worker')]);
  await until(async () => (await status()).quota.current_backlog === 0, 60_000).catch(async (e: unknown) => {
    throw new Error(`${String(e)}\nstatus: ${JSON.stringify(await status())}\n${d.logs()}`);
  });
  expect(await send()).toBe(202);
  await until(async () => (await d.stored()).rows >= producer.sent, 60_000);
  expect(await d.stored()).toEqual({ rows: CAP + BATCH, keys: CAP + BATCH });
}, 240_000);

/** Batches of BATCH events to the ingest process at `url()`; `sent` counts those accepted. */
function producerOf(d: Deployment, url: () => string) {
  const p = {
    sent: 0,
    async send() {
      const ts = new Date().toISOString();
      const events = Array.from({ length: BATCH }, (_, i) => ({ type: 'page', key: `u${(p.sent + i) % 97}`, idempotency_key: `e-${p.sent + i}`, ts, properties: { n: p.sent + i } }));
      const r = await fetch(`${url()}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${d.tenant.writeKey}`, 'content-type': 'application/json' }, body: JSON.stringify(events) });
      const body = (await r.json()) as { accepted?: number; field?: string; message?: string };
      if (r.status === 202) p.sent += BATCH;
      return { status: r.status, body };
    },
    async currentBacklog() {
      const r = await fetch(`${url()}/v1/status`, { headers: { authorization: `Bearer ${d.tenant.adminKey}` } });
      return ((await r.json()) as { quota: { current_backlog: number } }).quota.current_backlog;
    },
  };
  return p;
}
