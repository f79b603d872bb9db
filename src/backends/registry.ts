import type { Config } from '../config/schema.js';
import { SluiceError } from '../core/errors.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import type { Store } from '../ports/store.js';
import type { Backend, Finding, PortName } from './backend.js';
import { duckdbStore } from './duckdb/backend.js';
import { natsLog } from './nats/backend.js';
import { postgresCatalog, postgresStore } from './postgres/backend.js';
import { sqliteCatalog, sqliteLog } from './sqlite/backend.js';

/**
 * The backends sluice has, one object per engine and port, chosen by the scheme of the port's
 * URL (`embedded`, `nats://…`, `postgres://…`): the only place that opens one. Their modules
 * hold no driver, so importing this loads none (see backend.ts). A new backend is one more
 * entry here, with its config keys taken into src/config/schema.ts.
 */
export const BACKENDS: { readonly [P in PortName]: readonly Backend<P>[] } = {
  log: [sqliteLog, natsLog],
  store: [duckdbStore, postgresStore],
  catalog: [sqliteCatalog, postgresCatalog],
};

/** `nats://a:4222` → `nats`; `embedded` → `embedded`. */
function schemeOf(url: string): string {
  return url === 'embedded' ? 'embedded' : url.split(':', 1)[0]!.toLowerCase();
}

/**
 * The backend a URL names for a port. The configuration is checked with it when it is
 * loaded, so an unknown URL stops the start with its field named (SLUICE_ERR_CONFIG).
 */
export function backendFor<P extends PortName>(port: P, url: string): Backend<P> {
  const scheme = schemeOf(url);
  const found = (BACKENDS[port] as readonly Backend<P>[]).find((b) => b.schemes.includes(scheme));
  if (found) return found;
  const expected = [...new Set(BACKENDS[port].map((b) => b.example))].join(' or ');
  throw new SluiceError('SLUICE_ERR_CONFIG', `--${port} ${JSON.stringify(url)} is not a backend sluice knows; expected ${expected}`, { field: `${port}.url` });
}

/** The backend the configuration chooses for a port. */
export function configured<P extends PortName>(config: Readonly<Config>, port: P): Backend<P> {
  return backendFor(port, config[port].url);
}

/**
 * Whether this process needs the data directory to itself: a backend of its log or store
 * has one writer (the embedded ones). The embedded catalog does not, so role processes can
 * share it.
 */
export function ownsDataDir(config: Readonly<Config>): boolean {
  return configured(config, 'log').capabilities.ownsDataDir || configured(config, 'store').capabilities.ownsDataDir;
}

export async function openLog(config: Readonly<Config>, onFlush?: () => void): Promise<Log> {
  return configured(config, 'log').create(config, { onFlush });
}

/** The store, not yet connected (see Store.connect). */
export async function openStore(config: Readonly<Config>): Promise<Store> {
  return configured(config, 'store').create(config);
}

/** The catalog, connected (and on PostgreSQL, migrated). */
export async function openCatalog(config: Readonly<Config>): Promise<Catalog> {
  return configured(config, 'catalog').create(config);
}

/** `sluice doctor`: each port's backend probes its engine, in the order log, store, catalog. */
export async function probeAll(config: Readonly<Config>): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const port of ['log', 'store', 'catalog'] as const) out.push(...(await configured(config, port).probe(config)));
  return out;
}
