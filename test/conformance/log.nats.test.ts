import { afterAll } from 'vitest';
import { connect } from 'nats';
import { NatsLog } from '../../src/backends/nats/log.js';
import { namesOf } from '../../src/backends/nats/stream.js';
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
      NatsLog.open({ servers: [NATS_URL], stream, partitions, replicas: 1, duplicateWindowMs: 2 * HORIZON_MS, retentionMs: 0, now: () => now });
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
