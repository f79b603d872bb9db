import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import { SluiceError } from '../../core/errors.js';
import { BUSY_WAIT_MS } from './busy.js';

export type SqliteDatabase = Database.Database;

/** How the log's commits reach the disk. See docs/operations.md for what each mode risks. */
export type Fsync = 'always' | 'normal' | 'off';

const SYNCHRONOUS: Record<Fsync, string> = { always: 'FULL', normal: 'NORMAL', off: 'OFF' };

/**
 * Versioned migrations of the embedded database (the log and the catalog share one file).
 * Applied in order under an immediate transaction, so that two processes starting at once
 * do not both apply them. Never edit a shipped step; add one.
 */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
  CREATE TABLE records (
    p INTEGER NOT NULL, o INTEGER NOT NULL,
    tenant TEXT NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL, idem TEXT NOT NULL,
    ts INTEGER NOT NULL, received_at INTEGER NOT NULL, origin TEXT NOT NULL,
    properties TEXT NOT NULL, context TEXT NOT NULL,
    PRIMARY KEY (p, o)
  ) WITHOUT ROWID;
  CREATE TABLE heads (p INTEGER PRIMARY KEY, head INTEGER NOT NULL);
  CREATE TABLE offsets (grp TEXT NOT NULL, p INTEGER NOT NULL, committed INTEGER NOT NULL, PRIMARY KEY (grp, p)) WITHOUT ROWID;
  CREATE TABLE leases (
    grp TEXT NOT NULL, p INTEGER NOT NULL, owner TEXT, token INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (grp, p)
  ) WITHOUT ROWID;
  CREATE TABLE deliveries (
    grp TEXT NOT NULL, p INTEGER NOT NULL, from_o INTEGER NOT NULL, to_o INTEGER NOT NULL, win INTEGER NOT NULL, attempts INTEGER NOT NULL,
    PRIMARY KEY (grp, p)
  ) WITHOUT ROWID;
  CREATE TABLE members (grp TEXT NOT NULL, owner TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (grp, owner)) WITHOUT ROWID;
  CREATE TABLE tenants (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(name), scope TEXT NOT NULL,
    hash TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER
  );
  CREATE TABLE dead_letters (
    tenant TEXT NOT NULL, idem TEXT NOT NULL, type TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL,
    attempts INTEGER NOT NULL, p INTEGER NOT NULL, o INTEGER NOT NULL,
    first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, origin TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (tenant, idem)
  ) WITHOUT ROWID;
  `,
  // Records keyed by one integer, the partition and the offset packed as p * 2^40 + o: one
  // B-tree with dense leaves, where the WITHOUT ROWID table fitted few of its ~300-byte rows
  // per page. Appends measured 15-50% faster (append path, 1,000 records per transaction).
  `
  CREATE TABLE records_packed (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL, idem TEXT NOT NULL,
    ts INTEGER NOT NULL, received_at INTEGER NOT NULL, origin TEXT NOT NULL,
    properties TEXT NOT NULL, context TEXT NOT NULL
  );
  INSERT INTO records_packed SELECT p * 1099511627776 + o, tenant, type, key, idem, ts, received_at, origin, properties, context FROM records;
  DROP TABLE records;
  ALTER TABLE records_packed RENAME TO records;
  `,
  // The conservation check: what ingest saw per tenant and minute of receipt, written with
  // the records; and the receipt time of dead letters, to put them in the same minute.
  `
  CREATE TABLE tallies (
    tenant TEXT NOT NULL, minute INTEGER NOT NULL,
    received INTEGER NOT NULL, rejected INTEGER NOT NULL, duplicate INTEGER NOT NULL,
    PRIMARY KEY (tenant, minute)
  ) WITHOUT ROWID;
  ALTER TABLE dead_letters ADD COLUMN received_at INTEGER NOT NULL DEFAULT 0;
  `,
  // The W3C traceparent of the request that brought each record: traces cross the log.
  `
  ALTER TABLE records ADD COLUMN trace TEXT;
  `,
  // Schemas and their audit log; tenant settings; schema keys with a team; dead letters
  // with a state, a replay generation and an error signature; records that ingest already
  // judged (fault) or that replay brought back (generation).
  `
  ALTER TABLE records ADD COLUMN fault TEXT;
  ALTER TABLE records ADD COLUMN gen INTEGER;
  CREATE TABLE schemas (
    tenant TEXT NOT NULL, type TEXT NOT NULL, version INTEGER NOT NULL, owner TEXT NOT NULL, body TEXT NOT NULL,
    created_at INTEGER NOT NULL, created_by TEXT NOT NULL, forced_reason TEXT,
    PRIMARY KEY (tenant, type, version)
  ) WITHOUT ROWID;
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, at INTEGER NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL
  );
  CREATE INDEX audit_by_tenant ON audit (tenant, id);
  ALTER TABLE tenants ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
  ALTER TABLE api_keys ADD COLUMN team TEXT;
  ALTER TABLE dead_letters ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
  ALTER TABLE dead_letters ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE dead_letters ADD COLUMN signature TEXT NOT NULL DEFAULT '';
  ALTER TABLE dead_letters ADD COLUMN path TEXT NOT NULL DEFAULT '';
  ALTER TABLE dead_letters ADD COLUMN schema_version INTEGER;
  CREATE INDEX dead_letters_by_time ON dead_letters (tenant, last_seen, idem);
  CREATE INDEX dead_letters_by_signature ON dead_letters (tenant, signature);
  INSERT OR IGNORE INTO meta (k, v) VALUES ('schema_epoch', '0');
  `,
  // The console: saved queries per tenant, and when each key was last used.
  `
  CREATE TABLE saved_queries (
    tenant TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, query TEXT NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, created_by TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
  ) WITHOUT ROWID;
  ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
  `,
  // Alerts: rules, states, history, receivers, routing, silences, the outbox and the evaluation lease.
  `
  CREATE TABLE alert_rules (
    tenant TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
  ) WITHOUT ROWID;
  CREATE TABLE alert_states (
    tenant TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant, rule, severity)
  ) WITHOUT ROWID;
  CREATE TABLE alert_history (
    id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL, at INTEGER NOT NULL, body TEXT NOT NULL
  );
  CREATE INDEX alert_history_by_time ON alert_history (tenant, at, id);
  CREATE TABLE alert_objects (
    tenant TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind, name)
  ) WITHOUT ROWID;
  CREATE TABLE alert_outbox (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, receiver TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, last_error TEXT, delivered_at INTEGER
  ) WITHOUT ROWID;
  CREATE INDEX alert_outbox_due ON alert_outbox (delivered_at, next_at);
  CREATE TABLE alert_lease (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;
  `,
  // Transform pipelines: one versioned document of steps per tenant, and its redaction salt;
  // the lifecycle of dead-letter groups (the workbench).
  `
  CREATE TABLE pipelines (
    tenant TEXT NOT NULL, version INTEGER NOT NULL, steps TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL,
    PRIMARY KEY (tenant, version)
  ) WITHOUT ROWID;
  CREATE TABLE pipeline_salts (tenant TEXT PRIMARY KEY, salt TEXT NOT NULL);
  CREATE TABLE dlq_groups (
    tenant TEXT NOT NULL, signature TEXT NOT NULL, status TEXT NOT NULL, owner TEXT, history TEXT NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, signature)
  ) WITHOUT ROWID;
  `,
  // Rollouts: one active per tenant and change kind; per-minute tallies of cohort and baseline; the diff.
  `
  CREATE TABLE rollouts (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL, active INTEGER NOT NULL,
    rev INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, doc TEXT NOT NULL
  );
  CREATE UNIQUE INDEX rollouts_one_active ON rollouts (tenant, kind) WHERE active = 1;
  CREATE INDEX rollouts_by_tenant ON rollouts (tenant, created_at);
  CREATE TABLE rollout_tallies (
    id TEXT NOT NULL, minute INTEGER NOT NULL, side TEXT NOT NULL, events INTEGER NOT NULL, dead INTEGER NOT NULL,
    dropped INTEGER NOT NULL, compared INTEGER NOT NULL, diffs INTEGER NOT NULL, cost_ms REAL NOT NULL,
    PRIMARY KEY (id, minute, side)
  ) WITHOUT ROWID;
  CREATE TABLE rollout_diffs (id TEXT PRIMARY KEY, body TEXT NOT NULL);
  `,
  // Ingest availability per tenant and minute of receipt: requests answered, and those answered 5xx.
  `
  CREATE TABLE ingest_minutes (
    tenant TEXT NOT NULL, minute INTEGER NOT NULL, requests INTEGER NOT NULL, failed INTEGER NOT NULL,
    PRIMARY KEY (tenant, minute)
  ) WITHOUT ROWID;
  `,
  // The live pipeline version of each tenant: a version may be stored without being live (a
  // rollout's candidate). Until now the newest version was the live one.
  `
  CREATE TABLE pipeline_live (tenant TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID;
  INSERT INTO pipeline_live (tenant, version) SELECT tenant, MAX(version) FROM pipelines GROUP BY tenant;
  `,
  // Notifications pruned from the outbox, counted per tenant and receiver (the metrics never go down).
  `
  CREATE TABLE alert_notification_totals (
    tenant TEXT NOT NULL, receiver TEXT NOT NULL, delivered INTEGER NOT NULL, failed INTEGER NOT NULL,
    PRIMARY KEY (tenant, receiver)
  ) WITHOUT ROWID;
  `,
];

export interface OpenOptions {
  fsync?: Fsync;
  readonly?: boolean;
  /**
   * Runs SQLite's `PRAGMA quick_check` after opening (it reads every page once, without
   * checking indexes against their tables): pages overwritten with garbage are found at
   * start, with recovery steps, instead of as "database disk image is malformed" on a later
   * call. The log sets it; the CLI's short-lived openers do not pay for it.
   */
  integrityCheck?: boolean;
}

/** Opens (creating if needed) the embedded database at `file`, in WAL mode, migrated. */
export function openDatabase(file: string, options: OpenOptions = {}): SqliteDatabase {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  try {
    // Events and key hashes are private to the server's user; SQLite gives the WAL and shm
    // files the database file's mode.
    if (!options.readonly) chmodIfOwned(file, 0o600);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${SYNCHRONOUS[options.fsync ?? 'always']}`);
    // Other processes (the CLI, a second consumer) hold the write lock for milliseconds at most.
    db.pragma(`busy_timeout = ${BUSY_WAIT_MS}`);
    db.pragma('foreign_keys = ON');
    if (options.integrityCheck) quickCheck(db);
    migrate(db);
  } catch (e: unknown) {
    db.close();
    throw damagedFileError(
      e,
      file,
      `sluice will not serve from it: stop, restore it with its -wal file from a backup (or salvage what is left: sqlite3 ${file} ".recover" | sqlite3 recovered.db), then start again`,
    );
  }
  return db;
}

/**
 * What opening `file` threw, for the operator: when SQLite reports the file damaged
 * (SQLITE_CORRUPT*, SQLITE_NOTADB), a SLUICE_ERR_DATA_DAMAGED error (field `dataDir`, the
 * driver's error as its cause) that says so and then gives `recovery`, the steps that file
 * needs; any other error as it was thrown.
 */
export function damagedFileError(e: unknown, file: string, recovery: string): unknown {
  const code = (e as { code?: string }).code ?? '';
  if (!/^SQLITE_(CORRUPT|NOTADB)/.test(code)) return e;
  return new SluiceError('SLUICE_ERR_DATA_DAMAGED', `${file} is damaged (${(e as Error).message}). ${recovery}`, { field: 'dataDir', cause: e });
}

/** Throws SQLITE_CORRUPT (reported as damage by openDatabase) when quick_check finds a problem. */
function quickCheck(db: SqliteDatabase): void {
  const rows = db.pragma('quick_check(5)') as Array<{ quick_check: string }>;
  const problems = rows.map((r) => r.quick_check).filter((m) => m !== 'ok');
  if (problems.length === 0) return;
  throw Object.assign(new Error(`integrity check failed: ${problems.join('; ')}`), { code: 'SQLITE_CORRUPT' });
}

function migrate(db: SqliteDatabase): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current >= MIGRATIONS.length) return;
  db.exec('BEGIN IMMEDIATE');
  try {
    // Re-read under the lock: another process may have migrated meanwhile.
    const version = db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }
    db.exec('COMMIT');
  } catch (e) {
    db.exec('ROLLBACK');
    throw e;
  }
}

/** The catalog's epoch (see Catalog.epoch): moved by every schema publish and settings change. */
export function readEpoch(db: SqliteDatabase): number {
  return Number(db.prepare(`SELECT v FROM meta WHERE k = 'schema_epoch'`).pluck().get() ?? 0);
}

/** Moves the epoch; call it inside the transaction of the change. */
export function bumpEpoch(db: SqliteDatabase): void {
  db.prepare(`UPDATE meta SET v = CAST(v AS INTEGER) + 1 WHERE k = 'schema_epoch'`).run();
}

/** Runs `fn` in an IMMEDIATE transaction (takes the write lock up front: no upgrade deadlocks). */
export function immediate<T>(db: SqliteDatabase, fn: () => T): T {
  return db.transaction(fn).immediate();
}

/** Sets `file`'s mode; a file of another user (EPERM) keeps its own. */
export function chmodIfOwned(file: string, mode: number): void {
  try {
    fs.chmodSync(file, mode);
  } catch (e: unknown) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
  }
}
