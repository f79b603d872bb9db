import { redactUrl } from '../../core/redact.js';
import type { Backend } from '../backend.js';
import { natsLogConfig, natsServers } from './config.js';

/** The shared log: NATS JetStream. The `nats` client loads on first `create` or `probe`. */
export const natsLog: Backend<'log'> = {
  name: 'nats',
  port: 'log',
  schemes: ['nats', 'tls'],
  example: 'nats://host:4222[,host2:4222]',
  configSchema: natsLogConfig,
  capabilities: { ownsDataDir: false },
  async create(config, ctx) {
    const { NatsLog } = await import('./log.js');
    // As `sluice doctor` says (probe.ts), in each process's log at start too: a stream on one
    // server loses its acknowledged records with that server's disk.
    if (config.log.replicas < 3) {
      ctx?.logger?.warn(
        { replicas: config.log.replicas, stream: config.log.stream },
        `log.replicas is ${config.log.replicas}: the stream's records live on ${config.log.replicas === 1 ? 'one server; losing its disk loses acknowledged events' : `${config.log.replicas} servers, with no majority left when one is lost`}. Production runs 3 on a 3-node cluster (SLUICE_LOG_REPLICAS=3)`,
      );
    }
    return NatsLog.open({
      servers: natsServers(config.log.url),
      stream: config.log.stream,
      partitions: config.partitions,
      replicas: config.log.replicas,
      duplicateWindowMs: config.log.duplicateWindowMs,
      retentionMs: config.log.retentionMs,
      startTimeoutMs: config.log.startTimeoutMs,
      // Said on the first failed attempt and every tenth: a process waiting for NATS is not silent.
      onRetry: (e, attempt) => {
        if (attempt === 1 || attempt % 10 === 0) {
          const why = e instanceof Error ? e.message : String(e);
          ctx?.logger?.warn({ attempt, cause: why }, `waiting for NATS at ${redactUrl(config.log.url)} (${why}; for up to ${Math.round(config.log.startTimeoutMs / 1000)} s, log.startTimeoutMs, then this process exits with 1)`);
        }
      },
    });
  },
  async probe(config) {
    const { probeNats } = await import('./probe.js');
    return probeNats(config);
  },
};
