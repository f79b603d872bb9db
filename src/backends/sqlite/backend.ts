import type { Service } from '../../core/service.js';
import type { Backend } from '../backend.js';
import { sqliteLogConfig } from './config.js';
import type { SqliteLog } from './log.js';

/**
 * The embedded log and catalog: one SQLite file in the data directory (see ../embedded.ts).
 * The driver (better-sqlite3) loads on first `create`.
 */
export const sqliteLog: Backend<'log', SqliteLog> = {
  name: 'sqlite',
  port: 'log',
  schemes: ['embedded'],
  example: 'embedded',
  configSchema: sqliteLogConfig,
  capabilities: { ownsDataDir: true },
  async create(config, ctx) {
    const { openEmbeddedLog } = await import('../embedded.js');
    return openEmbeddedLog(config, ctx?.onFlush, ctx?.clock);
  },
  async probe(config) {
    const { probeEmbeddedFile } = await import('../embedded.js');
    return probeEmbeddedFile(config.dataDir, 'log', 'sqlite', `embedded SQLite (fsync: ${config.log.fsync})`);
  },
  services(log, { logger, clock }) {
    // The data-dir lock says no other process uses the embedded log: leases left by one that
    // died are free now, instead of at their expiry (a crash loop would otherwise wait a ttl
    // per start). A shared log (NATS) has other users: its leases expire by themselves.
    const leases: Service = {
      name: 'log-leases-of-a-dead-process',
      start() {
        const freed = log.expireLeases();
        if (freed > 0) logger.info({ leases: freed }, 'freed the leases of a process that stopped without releasing them');
      },
      stop: async () => undefined,
      health: () => ({ ok: true }),
    };
    let stopRetention: (() => void) | null = null;
    const retention: Service = {
      name: 'log-retention',
      async start() {
        const { startRetention } = await import('./retention.js');
        stopRetention = startRetention(log, logger, { clock });
      },
      async stop() {
        stopRetention?.();
        stopRetention = null;
      },
      health: () => ({ ok: true }),
    };
    return [leases, retention];
  },
};

export const sqliteCatalog: Backend<'catalog'> = {
  name: 'sqlite',
  port: 'catalog',
  schemes: ['embedded'],
  example: 'embedded',
  configSchema: { type: 'object', properties: {} },
  // WAL mode takes writers from several processes of one machine: role processes share it.
  capabilities: { ownsDataDir: false },
  async create(config) {
    const { openEmbeddedCatalog } = await import('../embedded.js');
    return openEmbeddedCatalog(config);
  },
  async probe(config) {
    const { probeEmbeddedFile } = await import('../embedded.js');
    return probeEmbeddedFile(config.dataDir, 'catalog', 'sqlite', 'embedded SQLite (role processes of one machine share it; on several machines use --catalog postgres://…)');
  },
};
