import type { Config } from '../config/schema.js';
import { SluiceError } from '../core/errors.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import type { Store } from '../ports/store.js';
import { openEmbeddedCatalog, openEmbeddedLog, openEmbeddedStore } from './embedded.js';
import { NatsLog } from './nats/log.js';
import { PostgresStore } from './postgres/store.js';

/**
 * Which backend serves each port, from the configuration's URLs: `embedded` (the files in
 * the data directory), `nats://…` for the log, `postgres://…` for the store. The only place
 * that maps a URL to a backend.
 */

export type BackendKind = 'embedded' | 'nats' | 'postgres';

export function kindOf(url: string, port: 'log' | 'store' | 'catalog'): BackendKind {
  if (url === 'embedded') return 'embedded';
  const scheme = url.split(':', 1)[0]!.toLowerCase();
  if (port === 'log' && (scheme === 'nats' || scheme === 'tls')) return 'nats';
  if (port === 'store' && (scheme === 'postgres' || scheme === 'postgresql')) return 'postgres';
  const expected = { log: 'embedded or nats://host:4222[,host2:4222]', store: 'embedded or postgres://user@host:5432/db', catalog: 'embedded' }[port];
  throw new SluiceError('SLUICE_ERR_CONFIG', `--${port} ${JSON.stringify(url)} is not a backend sluice knows; expected ${expected}`);
}

/**
 * Whether this process needs the data directory to itself: the embedded log and store have
 * one writer. The embedded catalog does not (SQLite in WAL mode takes writers from several
 * processes of one machine), so role processes can share it.
 */
export function ownsDataDir(config: Readonly<Config>): boolean {
  kindOf(config.catalog.url, 'catalog');
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

export function openCatalog(config: Readonly<Config>): Catalog {
  kindOf(config.catalog.url, 'catalog');
  return openEmbeddedCatalog(config);
}
