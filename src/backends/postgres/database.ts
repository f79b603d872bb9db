import pg from 'pg';
import { coerceError, NonRetryableError, RetryAfterError, SluiceError } from '../../core/errors.js';

/**
 * PostgreSQL plumbing shared by the store and the catalog: pools bound to one schema, and
 * versioned migrations applied at start under an advisory lock (so that N processes starting
 * together migrate once, in order).
 */

export interface PostgresTarget {
  /** A libpq URL: `postgres://user@host:5432/db`; `?schema=name` picks the schema (default `sluice`). */
  url: string;
  schema: string;
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

/** Splits `?schema=` off a URL (pg does not know it) and checks the schema's name. */
export function postgresTarget(url: string, fallbackSchema = 'sluice'): PostgresTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SluiceError('SLUICE_ERR_CONFIG', `${JSON.stringify(url)} is not a PostgreSQL URL; expected postgres://user@host:5432/database`);
  }
  const schema = u.searchParams.get('schema') ?? fallbackSchema;
  if (!SCHEMA.test(schema)) throw new SluiceError('SLUICE_ERR_CONFIG', `schema ${JSON.stringify(schema)} must be lower-case letters, digits and _ (at most 63)`);
  u.searchParams.delete('schema');
  return { url: u.toString(), schema };
}

/** A pool whose sessions see `schema` first; `statementTimeoutMs` bounds every statement. */
export function openPool(target: PostgresTarget, opts: { max: number; statementTimeoutMs?: number; name: string }): pg.Pool {
  const pool = new pg.Pool({
    types: TYPES,
    connectionString: target.url,
    max: opts.max,
    application_name: `sluice ${opts.name}`,
    options: `-c search_path=${target.schema}`,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs } : {}),
  });
  // An idle client losing its connection (PostgreSQL restarted) must not crash the process:
  // the next query gets a fresh one.
  pool.on('error', () => undefined);
  return pool;
}

/** bigint (offsets, epoch ms, counts) and numeric (sums of them) as numbers, not text. */
const TYPES = {
  getTypeParser: ((oid: number, format?: string) => {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  }) as typeof pg.types.getTypeParser,
};

export interface Migration {
  version: number;
  sql: string;
}

/**
 * Applies the migrations of `component` not yet applied, each in its own transaction, under
 * a session advisory lock on (schema, component). Idempotent; safe to run from many
 * processes at once.
 */
export async function migrate(pool: pg.Pool, schema: string, component: string, migrations: readonly Migration[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [`sluice:${schema}:${component}`]);
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${schema}.sluice_migrations (component text NOT NULL, version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))`,
      );
      const done = new Set(
        (await client.query<{ version: number }>(`SELECT version FROM ${schema}.sluice_migrations WHERE component = $1`, [component])).rows.map((r) => r.version),
      );
      for (const m of migrations) {
        if (done.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query(`INSERT INTO ${schema}.sluice_migrations (component, version) VALUES ($1, $2)`, [component, m.version]);
          await client.query('COMMIT');
        } catch (e: unknown) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new SluiceError('SLUICE_ERR_CONFIG', `migration ${component} ${m.version} failed in schema ${schema}: ${coerceError(e).message}`, { cause: e });
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [`sluice:${schema}:${component}`]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
}

/** Connection-level failures: the server is away, not the statement at fault. */
export function unavailable(e: unknown, what: string, url?: string): SluiceError {
  return new SluiceError('SLUICE_ERR_STORE_UNAVAILABLE', `${what}: PostgreSQL is not reachable (${coerceError(e).message}); ${nextStep(e, 'start it or fix the URL', url)}`, {
    retryAfter: 2,
    cause: e,
  });
}

/**
 * What to do about a failed connection, by PostgreSQL's SQLSTATE (Appendix A of its manual):
 * 3D000 (the database does not exist: `createdb` it), 28000/28P01 (authentication), else
 * `otherwise` (the server is away). `url` fills in the `createdb` command.
 */
export function nextStep(e: unknown, otherwise: string, url?: string): string {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === '3D000') return `create the database first (${createdbCommand(url)}) or fix the URL`;
  if (code === '28000' || code === '28P01') return "check the URL's user and password (and pg_hba.conf for this host)";
  return otherwise;
}

/**
 * A failed statement as the worker needs it: the rows' fault (SQLSTATE class 22 data
 * exception, 23 integrity: dead-letter them) or transient (everything else: retry).
 */
export function classify(e: unknown, what: string): Error {
  const err = coerceError(e);
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && /^(22|23)/.test(code)) return new NonRetryableError(`${what}: ${err.message}`, { cause: err });
  if (code === '57014') return new RetryAfterError(`${what} ran past its timeout`, 0, { cause: err });
  return new RetryAfterError(`${what} failed: ${err.message}`, 500, { cause: err });
}

/** Whether a failure is the connection's (the server away, restarting, or refusing us), not the statement's. */
export function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return typeof code !== 'string' || /^(08|57P|53)/.test(code) || /^E[A-Z]+$/.test(code);
}

export type Sql = <R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]) => Promise<R[]>;

/**
 * Runs statements on a pool, alone or in a transaction; a connection failure becomes
 * `onUnavailable(e)` (a 503 with Retry-After), a statement's own error passes through.
 */
export class Executor {
  constructor(
    private readonly pool: pg.Pool,
    private readonly onUnavailable: (e: unknown) => Error,
  ) {}

  readonly query: Sql = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) => {
    try {
      return (await this.pool.query<R>(text, values)).rows;
    } catch (e: unknown) {
      throw isConnectionError(e) ? this.onUnavailable(e) : e;
    }
  };

  /** Runs `fn` in one transaction: committed when it returns, rolled back when it throws. */
  async transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e: unknown) {
      throw this.onUnavailable(e);
    }
    const sql: Sql = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) => (await client.query<R>(text, values)).rows;
    try {
      await client.query('BEGIN');
      const out = await fn(sql);
      await client.query('COMMIT');
      return out;
    } catch (e: unknown) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw isConnectionError(e) && !(e instanceof SluiceError) ? this.onUnavailable(e) : e;
    } finally {
      client.release();
    }
  }
}

function createdbCommand(url: string | undefined): string {
  try {
    const u = new URL(url ?? '');
    const db = decodeURIComponent(u.pathname.slice(1));
    if (!u.hostname || !db) throw new Error('incomplete');
    return `createdb -h ${u.hostname} -p ${u.port || '5432'}${u.username ? ` -U ${decodeURIComponent(u.username)}` : ''} ${db}`;
  } catch {
    return 'createdb -h HOST -U USER NAME';
  }
}
