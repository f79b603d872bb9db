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
  async create(config) {
    const { NatsLog } = await import('./log.js');
    return NatsLog.open({
      servers: natsServers(config.log.url),
      stream: config.log.stream,
      partitions: config.partitions,
      replicas: config.log.replicas,
      duplicateWindowMs: config.log.duplicateWindowMs,
      retentionMs: config.log.retentionMs,
    });
  },
  async probe(config) {
    const { probeNats } = await import('./probe.js');
    return probeNats(config);
  },
};
