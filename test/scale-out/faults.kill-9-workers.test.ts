import { expect, it } from 'vitest';
import { deployments, sendAll, settle } from '../helpers/scale-out.js';
import { natsAvailable, postgresAvailable } from '../helpers/services.js';

/**
 * A worker of a scale-out deployment (NATS JetStream + PostgreSQL) killed with SIGKILL every
 * 2 s while 1M events flow; alone in its file, the longest of the suite, so that the other
 * fault files run beside it.
 */
const ready = (await natsAvailable()) && (await postgresAvailable());
/** Events sent while workers are killed: 1M, as the fault suite asks; FAULT_KILL_EVENTS=N for a quicker run. */
const KILL_EVENTS = Number(process.env.FAULT_KILL_EVENTS ?? 1_000_000);
const { deployed } = deployments();
/** A stall: no event stored for this long while workers are killed and restarted. */
const STALL_MS = 120_000;
/** The whole test's bound: 1M events through restarts on a loaded 2-core machine took 395–680 s. */
const TEST_MS = 1_200_000;

it.skipIf(!ready)('scale-out.kill-9-a-worker-every-2-s-while-events-flow-nothing-lost-nothing-doubled', async () => {
  const d = await deployed();
  // Stable worker ids, as a supervisor restarting a crashed instance gives: the new process
  // takes the dead one's leases back at once.
  const ids = ['w0', 'w1', 'w2'];
  const workers = await Promise.all(ids.map((id) => d.start('worker', { SLUICE_WORKER_ID: id })));
  const ingest = await d.start('ingest');
  // A worker dies every 2 s while the events flow, from ingest until they are stored (1M by default).
  let flowing = true;
  let kills = 0;
  const killer = (async () => {
    let i = 0;
    while (flowing) {
      await new Promise((r) => setTimeout(r, 2_000));
      const victim = i++ % workers.length;
      workers[victim]!.child.kill('SIGKILL');
      await workers[victim]!.exited;
      kills++;
      workers[victim] = await d.start('worker', { SLUICE_WORKER_ID: ids[victim] });
    }
  })();
  const began = Date.now();
  let said = began;
  const progress = (what: string): void => {
    if (Date.now() - said < 15_000) return;
    said = Date.now();
    console.log(`kill-9 every 2 s: ${what} after ${((said - began) / 1000).toFixed(0)} s, ${kills} workers killed`);
  };
  const sent = await sendAll(() => [ingest.url], d.tenant.writeKey, KILL_EVENTS, { concurrency: 4, onProgress: (n) => progress(`${n} of ${KILL_EVENTS} sent`) });
  console.log(`kill-9 every 2 s: ${KILL_EVENTS} sent in ${((Date.now() - began) / 1000).toFixed(0)} s, ${kills} workers killed`);
  // The killing goes on until the workers have stored everything, and while `settle` then
  // checks that nothing more arrives. What fails is a stall (nothing more stored for STALL_MS),
  // not a slow machine: beside the other fault files on 2 cores a restarted worker may take
  // 10 s to be up, so the pace of kills and of storing varies threefold from one machine to the next.
  try {
    await settle(d, `kill-9 every 2 s, ${KILL_EVENTS} events`, sent, TEST_MS, STALL_MS);
  } finally {
    flowing = false;
    await killer;
  }
  console.log(`kill-9: ${kills} workers killed`);
  expect(kills).toBeGreaterThan(0);
}, TEST_MS + 300_000);
