import type { Config } from '../config/schema.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import type { Store } from '../ports/store.js';
import { openEmbeddedCatalog, openEmbeddedLog, openEmbeddedStore } from './embedded.js';
import { kindOf } from './kinds.js';
import { NatsLog } from './nats/log.js';
import { PostgresCatalog } from './postgres/catalog.js';
import { PostgresStore } from './postgres/store.js';

/**
 * The backend of each port, from the configuration's URLs (see kinds.ts): the only place that
 * opens one.
 */

/**
 * Whether this process needs the data directory to itself: the embedded log and store have
 * one writer. The embedded catalog does not (SQLite in WAL mode takes writers from several
 * processes of one machine), so role processes can share it.
 */
export function ownsDataDir(config: Readonly<Config>): boolean {
  return kindOf(config.log.url, 'log') === 'embedded' || kindOf(config.store.url, 'store') === 'embedded';
}

/** `nats://a:4222,b:4222` → the servers the client should know. */
export function natsServers(url: string): string[] {
  const rest = url.replace(/^[a-z]+:\/\//i, '');
  return rest.split(',').map((h) => h.trim()).filter((h) => h.length > 0);
}

export async function openLog(config: Readonly<Config>, onFlush?: () => void): Promise<Log> {
  if (kindOf(config.log.url, 'log') === 'embedded') return openEmbeddedLog(config, onFlush);
  return NatsLog.open({
    servers: natsServers(config.log.url),
    stream: config.log.stream,
    partitions: config.partitions,
    replicas: config.log.replicas,
    duplicateWindowMs: config.log.duplicateWindowMs,
    retentionMs: config.log.retentionMs,
  });
}

export function openStore(config: Readonly<Config>): Store {
  if (kindOf(config.store.url, 'store') === 'embedded') return openEmbeddedStore(config);
  return new PostgresStore({ url: config.store.url, queryTimeoutMs: config.query.timeoutMs });
}

/** The catalog, connected (and on PostgreSQL, migrated). */
export async function openCatalog(config: Readonly<Config>): Promise<Catalog> {
  if (kindOf(config.catalog.url, 'catalog') === 'embedded') return openEmbeddedCatalog(config);
  const catalog = new PostgresCatalog(config.catalog.url);
  try {
    await catalog.connect();
  } catch (e: unknown) {
    await catalog.close();
    throw e;
  }
  return catalog;
}
