import type { Clock } from '../core/clock.js';
import type { Service } from '../core/service.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../core/service.js';
import type { Catalog } from '../ports/catalog.js';
import type { Log } from '../ports/log.js';
import type { Store } from '../ports/store.js';

/**
 * A backend: one engine behind one port, as one object the registry (registry.ts) chooses by
 * the scheme of the port's URL. Its module holds no driver: `create` and `probe` import the
 * driver on first use, so a process loads only the drivers of the backends it is configured
 * with (the embedded default never loads `nats` or `pg`).
 */

/** The ports a configuration gives a URL to, and the interface each one opens to. */
export interface PortTypes {
  log: Log;
  store: Store;
  catalog: Catalog;
}
export type PortName = keyof PortTypes;

/** One finding of `sluice doctor`. */
export interface Finding {
  level: 'ok' | 'warn' | 'fail';
  what: string;
  detail: string;
}

/**
 * The keys of `config.<port>` that only this backend reads, as a JSON Schema object (the
 * global schema, src/config/schema.ts, takes its properties in, so the file keys, SLUICE_*
 * variables and flags stay the same and unknown keys are still refused by name).
 */
export interface BackendConfigSchema {
  readonly type: 'object';
  readonly properties: Readonly<Record<string, unknown>>;
}

/** What the assembly needs to know of a backend, derived from its engine (not set by users). */
export interface BackendCapabilities {
  /**
   * It has one writer, the process that holds the data directory (src/app/data-dir-lock.ts):
   * such a process runs every role (`sluice up`); role processes need a shared backend.
   */
  readonly ownsDataDir: boolean;
}

/** What `create` may be given besides the configuration. */
export interface BackendContext {
  /** Called after each group commit of a log (the embedded log's consumers wake on it). */
  onFlush?: () => void;
  /** The log's clock: leases, the dedupe horizon, retention (the system clock by default). */
  clock?: Clock;
  /** Where an engine says, once at open, what in its configuration is unsafe for production (one replica, say). */
  logger?: Logger;
}

/** What a backend's services are given. */
export interface ServiceContext {
  logger: Logger;
  /** When periodic upkeep runs (the system clock by default). */
  clock?: Clock;
}

/**
 * `T` is the instance `create` returns (a subtype of the port), so that `services` can use
 * what that engine has beyond the port.
 */
export interface Backend<P extends PortName = PortName, T extends PortTypes[P] = PortTypes[P]> {
  /** The engine: sqlite, duckdb, nats, postgres. */
  readonly name: string;
  readonly port: P;
  /** URL schemes it serves, lower case; `embedded` stands for the URL `embedded`. */
  readonly schemes: readonly string[];
  /** What the user writes to choose it, for messages: `nats://host:4222[,host2:4222]`. */
  readonly example: string;
  readonly configSchema: BackendConfigSchema;
  readonly capabilities: BackendCapabilities;
  /**
   * Opens the port, loading the driver on first use: a log or a catalog connected (a catalog
   * also migrated); a store not yet connected (its `connect(signal)` retries until it answers,
   * see ports/store.ts). Throws what the port's `connect` throws when the engine cannot be reached.
   */
  create(config: Readonly<Config>, ctx?: BackendContext): Promise<T>;
  /**
   * Checks the engine a configuration names without opening the port for work (no
   * migration, no stream creation): reachability, version, durability settings. Never
   * throws: what fails is a `fail` finding that says what to do.
   */
  probe(config: Readonly<Config>): Promise<Finding[]>;
  /**
   * Upkeep the process that opened `instance` runs beside it (the embedded log frees the
   * leases of a process that died and prunes acked records). None when absent.
   */
  services?(instance: T, ctx: ServiceContext): Service[];
}
