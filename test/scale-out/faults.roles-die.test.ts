import { expect, it } from 'vitest';
import { until } from '../helpers/pipeline.js';
import { deployments, sendAll, settle } from '../helpers/scale-out.js';
import { natsAvailable, postgresAvailable } from '../helpers/services.js';

/**
 * Role processes of a scale-out deployment dying for good or again and again: a worker that
 * never comes back (its partitions move to the others), and an ingest process killed while
 * the producer retries its unacknowledged batches, with the same keys, on the other one.
 */
const ready = (await natsAvailable()) && (await postgresAvailable());
const { deployed } = deployments();

interface Status {
  log: { partitions: { partition: number; owner: string | null }[] };
}

it.skipIf(!ready)('scale-out.a-dead-workers-partitions-move-to-the-others-within-12-s', async () => {
  const d = await deployed();
  const ids = ['w0', 'w1', 'w2'];
  const [w0] = await Promise.all(ids.map((id) => d.start('worker', { SLUICE_WORKER_ID: id })));
  const query = await d.start('query');
  const ingest = await d.start('ingest');
  const owners = async (): Promise<(string | null)[]> => {
    const r = await fetch(`${query.url}/v1/status`, { headers: { authorization: `Bearer ${d.tenant.adminKey}` } });
    expect(r.status).toBe(200);
    return ((await r.json()) as Status).log.partitions.map((p) => p.owner);
  };
  // Worker ids name the owners (host-id-consumer): w0's are the ones that die with it.
  const of = (id: string) => (owner: string | null) => owner !== null && owner.includes(`-${id}-`);
  const sending = sendAll(() => [ingest.url], d.tenant.writeKey, 64_000, { concurrency: 2, eventsPerSecond: 4_000 });
  // Until the three share the partitions.
  for (let o = await owners(); !ids.every((id) => o.some(of(id))) || o.includes(null); o = await owners()) await new Promise((r) => setTimeout(r, 200));

  w0!.child.kill('SIGKILL');
  await w0!.exited;
  const killedAt = Date.now();
  let movedAfterMs = NaN;
  for (;;) {
    const o = await owners();
    if (!o.some(of('w0')) && !o.includes(null)) {
      movedAfterMs = Date.now() - killedAt;
      break;
    }
    if (Date.now() - killedAt > 30_000) throw new Error(`partitions still held by the dead worker or by nobody 30 s after: ${JSON.stringify(o)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const sent = await sending;
  console.log(`a worker killed for good: its partitions held by the other two ${(movedAfterMs / 1000).toFixed(1)} s later`);
  await settle(d, 'a worker killed for good', sent);
  // A lease of 6 s, renewed every 2 s: taken over within 8 s. Measured through the query role's
  // status on a two-core machine that also runs this suite's other file (load average 11): its
  // timers and the status poll added 2 s once (10.0 s), so the bound leaves 4 s for them.
  expect(movedAfterMs).toBeLessThan(12_000);
}, 300_000);

it.skipIf(!ready)('scale-out.kill-9-an-ingest-process-while-the-producer-retries-on-the-other-nothing-lost-nothing-doubled', async () => {
  const d = await deployed({ env: { SLUICE_OBS_CONSERVATION_INTERVAL_MS: '2000' } });
  await Promise.all([d.start('worker'), d.start('worker')]);
  const ingest = await Promise.all([d.start('ingest'), d.start('ingest')]);
  // Behind a load balancer: the producer sends to both, and retries a batch that got no answer
  // (connection refused or reset) with the same keys, on the next one.
  let flowing = true;
  let kills = 0;
  let lastKillAt = 0;
  // A restart that fails ends the test with its error, instead of leaving the producer
  // retrying against a process that is gone until the test's timeout.
  let restartError: unknown = null;
  const killer = (async () => {
    while (flowing) {
      await new Promise((r) => setTimeout(r, 1_000 + Math.random() * 2_000));
      if (!flowing) break;
      const victim = kills++ % 2;
      ingest[victim]!.child.kill('SIGKILL');
      await ingest[victim]!.exited;
      lastKillAt = Date.now();
      ingest[victim] = await d.start('ingest');
    }
  })().catch((e: unknown) => {
    restartError = e;
  });
  // Events flow in rounds of 20,000 until the ingest processes were killed three times.
  const sent = { keys: 0, accepted: 0, duplicates: 0, retries: 0 };
  while (kills < 3 && restartError === null) {
    const s = await sendAll(() => ingest.map((p) => p.url), d.tenant.writeKey, 20_000, { concurrency: 4 });
    for (const k of ['keys', 'accepted', 'duplicates', 'retries'] as const) sent[k] += s[k];
  }
  flowing = false;
  await killer;
  if (restartError !== null) throw restartError;
  console.log(`kill-9 an ingest process: ${kills} kills, ${sent.retries} requests retried`);
  expect(sent.retries).toBeGreaterThan(0);
  await settle(d, 'kill-9 an ingest process every 2 s', sent);

  // A killed ingest process loses the receipts it had not written yet (NATS: written every
  // second), so the minutes of the kills may show more stored than received. Nothing was lost
  // or doubled (above): that is no conservation gap, and the built-in page does not fire on it.
  // It did: a gap of 6,906 paged after one kill -9, with every event stored exactly once.
  const query = await d.start('query');
  const conservation = async () =>
    ((await (await fetch(`${query.url}/v1/status`, { headers: { authorization: `Bearer ${d.tenant.adminKey}` } })).json()) as { conservation: { settled_until: string | null; gap_events: number; receipts_lost_events?: number } | null })
      .conservation;
  // Until the minute of the last kill has settled and been checked.
  const settledPast = lastKillAt - (lastKillAt % 60_000) + 60_000;
  await until(async () => {
    const c = await conservation();
    return c !== null && c.settled_until !== null && Date.parse(c.settled_until) >= settledPast;
  }, 90_000);
  const c = (await conservation())!;
  console.log(`kill-9 an ingest process: receipts lost with the killed processes ${c.receipts_lost_events}, conservation gap ${c.gap_events}`);
  expect(c.gap_events).toBe(0);
  expect(c.receipts_lost_events).toBeGreaterThanOrEqual(0);
  const metrics = await (await fetch(`${query.url}/metrics`)).text();
  expect(metrics.match(/^sluice_conservation_gap_events\{[^}]*\} (\d+)$/gm) ?? []).not.toContainEqual(expect.stringMatching(/ [1-9]\d*$/));
  expect(metrics).not.toMatch(/^sluice_alerts\{[^}]*alertname="sluice_conservation_gap"[^}]*state="firing"[^}]*\} 1$/m);
}, 420_000);
