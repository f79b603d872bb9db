import type { Backend } from '../backend.js';

/** The shared store and catalog: PostgreSQL. The `pg` client loads on first `create` or `probe`. */
export const postgresStore: Backend<'store'> = {
  name: 'postgres',
  port: 'store',
  schemes: ['postgres', 'postgresql'],
  example: 'postgres://user@host:5432/db',
  configSchema: { type: 'object', properties: {} },
  capabilities: { ownsDataDir: false },
  async create(config) {
    const { PostgresStore } = await import('./store.js');
    return new PostgresStore({ url: config.store.url, queryTimeoutMs: config.query.timeoutMs });
  },
  async probe(config) {
    const { probePostgres } = await import('./probe.js');
    return probePostgres(config.store.url, 'store');
  },
};

export const postgresCatalog: Backend<'catalog'> = {
  name: 'postgres',
  port: 'catalog',
  schemes: ['postgres', 'postgresql'],
  example: 'postgres://user@host:5432/db',
  configSchema: { type: 'object', properties: {} },
  capabilities: { ownsDataDir: false },
  /** Connected and migrated. */
  async create(config) {
    const { PostgresCatalog } = await import('./catalog.js');
    const catalog = new PostgresCatalog(config.catalog.url);
    try {
      await catalog.connect();
    } catch (e: unknown) {
      await catalog.close();
      throw e;
    }
    return catalog;
  },
  async probe(config) {
    const { probePostgres } = await import('./probe.js');
    return probePostgres(config.catalog.url, 'catalog');
  },
};
