import { afterAll, expect, it } from 'vitest';
import { deploy, drained, sendAll, type Deployment } from '../helpers/scale-out.js';
import { until } from '../helpers/pipeline.js';
import { freePort, startServer, type ServerProcess } from '../helpers/server.js';
import { natsAvailable, postgresAvailable } from '../helpers/services.js';

/**
 * `sluice up` with every role in one process on NATS and PostgreSQL, killed with SIGKILL in
 * the middle of the load and started again: what it acknowledged is stored once.
 */
const ready = (await natsAvailable()) && (await postgresAvailable());
let d: Deployment | null = null;
afterAll(async () => {
  await d?.cleanup();
}, 60_000);

it.skipIf(!ready)('scale-out.sluice-up-on-nats-and-postgres-killed-mid-load-restarts-and-stores-every-acknowledged-event-once', async () => {
  d = await deploy();
  const port = await freePort();
  const start = (): Promise<ServerProcess> => startServer(d!.dataDir, port, d!.args, { ...d!.env, SLUICE_WORKER_ID: 'up' }, 'up');
  let up = await start();
  let killed = false;
  const restarted = (async () => {
    await until(async () => (await d!.stored()).rows > 15_000, 60_000, 100);
    up.child.kill('SIGKILL');
    await up.exited;
    killed = true;
    up = await start();
  })();
  // While it is down, requests fail and are retried with the same keys.
  const sent = await sendAll(() => [up.url], d.tenant.writeKey, 60_000, { concurrency: 4, eventsPerSecond: 8_000 });
  await restarted;
  expect(killed).toBe(true);
  await drained(d, sent.keys, 'after the restart', { timeoutMs: 180_000 });
  await new Promise((r) => setTimeout(r, 1_000));
  const stored = await d.stored();
  console.log(`sluice up killed mid-load: ${sent.keys} distinct keys acknowledged (${sent.retries} retried requests), stored ${stored.rows}, doubled ${stored.rows - stored.keys}, lost ${sent.keys - stored.keys}`);
  expect(stored).toEqual({ rows: sent.keys, keys: sent.keys });
  up.child.kill('SIGTERM');
  await up.exited;
}, 300_000);
