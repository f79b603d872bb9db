import type { Clock } from '../core/clock.js';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { SluiceError } from '../core/errors.js';
import type { Finding } from './backend.js';
import { DuckdbStore } from './duckdb/store.js';
import { SqliteCatalog } from './sqlite/catalog.js';
import { SqliteLog } from './sqlite/log.js';
import { positionsFile } from './sqlite/positions.js';

/**
 * The embedded default: the log and the catalog in one SQLite file, the store in one DuckDB
 * file, both under the data directory. The only place that knows the file names.
 */
export function embeddedPaths(dataDir: string): { sqlite: string; duckdb: string } {
  return { sqlite: path.resolve(dataDir, 'sluice.db'), duckdb: path.resolve(dataDir, 'store.duckdb') };
}

/**
 * `sluice doctor` on an embedded file: whether the data directory and the file exist (a
 * mistyped --data-dir shows as "nothing there yet", not as ok), and how large the file is.
 * Nothing is opened: doctor may run beside the server that holds the files.
 */
export function probeEmbeddedFile(dataDir: string, what: Finding['what'], file: 'sqlite' | 'duckdb', detail: string): Finding[] {
  const dir = path.resolve(dataDir);
  const at = embeddedPaths(dataDir)[file];
  if (!fs.existsSync(dir)) {
    return [{ level: 'warn', what, detail: `no data directory at ${dir}: nothing is stored there yet ("sluice up" makes it). If you expected data there, fix --data-dir.` }];
  }
  const size = sizeOf(at);
  if (size < 0) return [{ level: 'warn', what, detail: `no ${path.basename(at)} in ${dir} yet ("sluice up" makes it). If you expected data there, fix --data-dir.` }];
  // The write-ahead logs hold what is not checkpointed yet (SQLite's "-wal", DuckDB's
  // ".wal"), and the log's consumer offsets have a file of their own (positions.ts).
  const companions = (file === 'sqlite' ? [`${at}-wal`, positionsFile(at), `${positionsFile(at)}-wal`] : [`${at}.wal`]).map((f) => ({ name: path.basename(f), size: sizeOf(f) })).filter((f) => f.size > 0);
  const total = companions.reduce((n, f) => n + f.size, size);
  const shared = what === 'catalog' ? ' (the same files as the log)' : '';
  const names = [path.basename(at), ...companions.map((f) => f.name)];
  return [{ level: 'ok', what, detail: `${detail}: ${names.join(', ')} in ${dir}${shared}, ${(total / 1024 / 1024).toFixed(1)} MiB` }];
}

/**
 * Refuses to open a data directory whose `sluice.db` (the log and the catalog) is missing or
 * empty while the log's offsets file beside it is there: the file was deleted or truncated.
 * Opened anyway, it would start as a fresh install, with new keys for a new default tenant
 * over the old store, and the store, which remembers the log's offsets it applied, would take
 * the new log's first records for ones it already has: they would be acknowledged and never
 * stored. SLUICE_ERR_DATA_DAMAGED, with the way out.
 */
export function refuseLostLog(dataDir: string): void {
  const { sqlite } = embeddedPaths(dataDir);
  const size = sizeOf(sqlite);
  // The store alone is no proof (another process may have made it first); the workers compare
  // its applied offsets with the log's heads before they consume (startWorkers).
  const offsets = positionsFile(sqlite);
  if (size > 0 || sizeOf(offsets) <= 0) return;
  throw new SluiceError(
    'SLUICE_ERR_DATA_DAMAGED',
    `${sqlite} is ${size === 0 ? 'empty' : 'missing'}, but ${path.basename(offsets)} is still in ${path.resolve(dataDir)}: the log and the catalog (tenants, keys, schemas) were lost. sluice will not start over them as a fresh install: restore ${path.basename(sqlite)} (with its -wal file) from a backup; or, to start afresh, move the whole data directory aside.`,
    { field: 'dataDir' },
  );
}

/** The size of `file` in bytes; -1 when it does not exist. */
function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return -1;
  }
}

/** `clock` is the log's clock (leases, the dedupe horizon and retention): a test's, or the system clock. */
export function openEmbeddedLog(config: Readonly<Config>, onFlush?: () => void, clock?: Pick<Clock, 'now'>): SqliteLog {
  refuseLostLog(config.dataDir);
  return new SqliteLog({
    file: embeddedPaths(config.dataDir).sqlite,
    partitions: config.partitions,
    fsync: config.log.fsync,
    dedupeHorizonMs: config.log.dedupeHorizonMs,
    retentionMs: config.log.retentionMs,
    ledgerTailKeys: config.log.ledgerRunKeys,
    onFlush,
    clock,
  });
}

export function openEmbeddedCatalog(config: Readonly<Config>): SqliteCatalog {
  refuseLostLog(config.dataDir);
  return new SqliteCatalog(embeddedPaths(config.dataDir).sqlite);
}

export function openEmbeddedStore(config: Readonly<Config>): DuckdbStore {
  return new DuckdbStore({
    file: embeddedPaths(config.dataDir).duckdb,
    queryTimeoutMs: config.query.timeoutMs,
    memoryMb: config.store.memoryMb,
    threads: config.store.threads,
    readers: config.query.readers,
    readersPerTenant: config.query.readersPerTenant,
  });
}
