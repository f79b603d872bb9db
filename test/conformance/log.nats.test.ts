import { afterAll, expect, it } from 'vitest';
import { connect } from 'nats';
import { NatsLog } from '../../src/backends/nats/log.js';
import { namesOf } from '../../src/backends/nats/stream.js';
import { entry } from '../helpers/entries.js';
import { NatsCluster } from '../helpers/outage.js';
import { NATS_URL, natsAvailable, uniqueName } from '../helpers/services.js';
import { logConformance } from './log-suite.js';

const streams: string[] = [];
const HORIZON_MS = 1_000;

if (await natsAvailable()) {
  logConformance('nats', async (partitions) => {
    const stream = uniqueName('sluice_test');
    streams.push(stream);
    let now = Date.now();
    const open = () =>
      NatsLog.open({ servers: [NATS_URL], stream, partitions, replicas: 1, duplicateWindowMs: 2 * HORIZON_MS, retentionMs: 0, clock: { now: () => now } });
    let log = await open();
    return {
      get log() {
        return log;
      },
      // Leases follow the fake clock; the duplicate window is the server's: wait it out.
      advance: async (ms) => {
        now += ms;
        if (ms >= HORIZON_MS) await new Promise((r) => setTimeout(r, ms));
      },
      reopen: async () => {
        await log.close();
        log = await open();
        return log;
      },
    };
  });

  // Beyond the suite: every process of a deployment starts at once, the cluster with them. A
  // log opened while only one of three servers runs waits for the others instead of failing.
  it('open.waits-for-a-cluster-that-is-still-forming', async () => {
    const cluster = await NatsCluster.start(3, 1);
    try {
      const opening = NatsLog.open({ servers: cluster.url.split(','), stream: 'sluice_forming', partitions: 4, replicas: 3, duplicateWindowMs: 60_000, retentionMs: 0 });
      await new Promise((r) => setTimeout(r, 3_000));
      cluster.startNode(1);
      cluster.startNode(2);
      const log = await opening;
      const [outcome] = await log.append([entry('t', 1, 4)]);
      expect(outcome).toMatchObject({ status: 'appended' });
      await log.close();
    } finally {
      await cluster.stop();
    }
  }, 90_000);

  // Nothing leaked: every stream and bucket a test made is deleted.
  afterAll(async () => {
    const nc = await connect({ servers: NATS_URL });
    const jsm = await nc.jetstreamManager();
    for (const s of streams) {
      for (const name of namesOf(s).streams) await jsm.streams.delete(name).catch(() => undefined);
    }
    await nc.close();
  });
}
