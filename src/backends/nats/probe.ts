import { connect } from 'nats';
import type { Config } from '../../config/schema.js';
import { coerceError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';
import type { Finding } from '../backend.js';
import { natsServers } from './config.js';
import { partitionsOf } from './stream.js';

/** `sluice doctor` on a NATS log: reachability, version, fsync, the stream's replicas and partitions. */
export async function probeNats(config: Readonly<Config>): Promise<Finding[]> {
  const out: Finding[] = [];
  const servers = natsServers(config.log.url);
  let nc;
  try {
    nc = await connect({ servers, timeout: 5_000, maxReconnectAttempts: 0 });
  } catch (e: unknown) {
    return [{ level: 'fail', what: 'log', detail: `cannot reach NATS at ${servers.join(', ')}: ${coerceError(e).message}. Start it, or fix --log.` }];
  }
  try {
    const version = nc.info?.version ?? 'unknown';
    out.push({ level: 'ok', what: 'log', detail: `NATS ${version} at ${redactUrl(config.log.url)}` });
    const [major, minor] = version.split('.').map(Number);
    if (major === 2 && (minor ?? 0) < 10) {
      out.push({
        level: 'warn',
        what: 'log durability',
        detail: `NATS ${version} cannot fsync every write (sync_interval arrived in 2.10): it acknowledges before the data is on disk and syncs every 2 minutes, so a power failure of the servers holding a stream can lose acknowledged events. Upgrade to 2.10 or later and set jetstream { sync_interval: always }, with 3 replicas.`,
      });
    } else {
      out.push({
        level: 'warn',
        what: 'log durability',
        detail: 'sluice cannot read the servers\' sync_interval from a client: check that every server has jetstream { sync_interval: always } (the default fsyncs every 2 minutes while acknowledging at once)',
      });
    }
    const jsm = await nc.jetstreamManager();
    try {
      const info = await jsm.streams.info(config.log.stream);
      const replicas = info.config.num_replicas;
      out.push(
        replicas >= 3
          ? { level: 'ok', what: 'stream', detail: `${config.log.stream}: ${replicas} replicas, ${info.state.messages} records` }
          : { level: 'warn', what: 'stream', detail: `${config.log.stream} has ${replicas} replica(s): one server lost loses its records. Production runs 3 (log.replicas: 3 on a 3-node cluster).` },
      );
      const partitions = partitionsOf(info.config.description);
      if (partitions !== null && partitions !== config.partitions) {
        out.push({ level: 'fail', what: 'stream', detail: `${config.log.stream} was created with ${partitions} partitions; the configuration says ${config.partitions}` });
      }
    } catch {
      out.push({ level: 'ok', what: 'stream', detail: `${config.log.stream} does not exist yet: the first sluice process creates it` });
    }
  } finally {
    await nc.close().catch(() => undefined);
  }
  return out;
}
