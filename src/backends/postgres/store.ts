import type pg from 'pg';
import { FencedError, NonRetryableError, RetryAfterError, SluiceError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';
import { INTERVAL_MS } from '../../core/time.js';
import type { CountQuery, CountRow, LogRecord, MinuteCount } from '../../core/types.js';
import type { Cell, CommitBatch, CommitResult, EventSearch, QueryAnswer, SeriesScan, SeriesScanAnswer, Store, StoreCapabilities, StoreHealth, StoredEvent, EventPosition, VersionOf } from '../../ports/store.js';
import type { Views } from '../../ports/views.js';
import type { QuerySpec } from '../../core/query.js';
import { countsPerMinute } from '../minute-counts.js';
import { Params, rawQuerySql } from '../sql/compile.js';
import { chooseView, residualFilters } from '../../core/plan.js';
import { VIEW_ROW_ORDER, viewMaintainSql, viewQuerySql, viewTableDdl, viewWhereSql } from '../sql/views.js';
import { COUNTS_1M, PostgresBackfills } from './backfill.js';
import { classify, Executor, migrate, openPool, postgresTarget, unavailable, type Sql } from './database.js';
import { STORE_MIGRATIONS } from './store-schema.js';
import { PostgresViews, type LiveView } from './views.js';
import { POSTGRES } from './dialect.js';
import { producedBy, withdrawEvents } from './withdraw.js';
import { scanSeries } from './series-scan.js';

export interface PostgresStoreOptions {
  /** `postgres://…[?schema=name]`. */
  url: string;
  queryTimeoutMs?: number;
  /** Connections for queries (commits have their own). */
  readers?: number;
  /** How long the key ledger remembers an idempotency key (the dedupe horizon). */
  dedupeHorizonMs?: number;
}

const DAY = 86_400_000;

/**
 * The Store on PostgreSQL, shared by any number of worker and query processes.
 *
 * - Raw events live in `events`, partitioned by event time, one partition per UTC day,
 *   created on demand (dropping a day is how old data goes).
 * - A commit is one transaction: lock the batch's `applied` rows (in partition order, so two
 *   workers never deadlock), refuse stale tokens (fencing), skip records at or below the
 *   applied offset (redelivery), skip keys already in the key ledger (a producer's retry past
 *   the log's dedupe window), insert the rest with the per-minute counts, move the offsets.
 * - Queries go through the shared compiler in PostgreSQL's dialect, on their own pool with a
 *   statement timeout.
 *
 * JSON is stored as jsonb: queries read it fast, and it comes back normalized (key order and
 * spacing), which JSON does not give meaning to.
 */
export class PostgresStore implements Store {
  readonly name = 'postgres';
  readonly capabilities: StoreCapabilities = { exactlyOnce: 'transactional-offsets', transactions: true, concurrentWriters: true };
  private writer: pg.Pool | null = null;
  private reader: pg.Pool | null = null;
  private readonly days = new Set<number>();
  private readonly target;
  private readonly queryTimeoutMs: number;

  private readonly viewTables = new PostgresViews();
  private exec: Executor | null = null;

  /** See ports/views.ts. */
  readonly views: Views = {
    put: (tenant, def, source, maxApi) => this.executor().transaction((sql) => this.viewTables.put(sql, tenant, def, source, maxApi)),
    remove: (tenant, name) => this.executor().transaction((sql) => this.viewTables.remove(sql, tenant, name)),
    list: (tenant) => this.viewTables.list((text, values) => this.read(text, values), tenant),
  };

  /** Rebuilding derived tables from raw events (see ports/backfill.ts and backfill.ts). */
  readonly backfills = new PostgresBackfills(
    (fn) => this.executor().transaction(fn),
    (text, values) => this.read(text, values),
    async (sql, tenant, name) => {
      if (name === 'counts_1m') return COUNTS_1M;
      const v = await this.viewTables.get(sql, tenant, name);
      if (!v) return null;
      return {
        table: v.table,
        ddl: (t: string) => viewTableDdl(t, v.def),
        bucketColumn: 'bucket',
        grainMs: INTERVAL_MS[v.def.grain],
        events: 'sum(n) FILTER (WHERE m = 0)',
        order: VIEW_ROW_ORDER,
        aggregate: (into: string, source: string, p: Params) => viewMaintainSql(POSTGRES, into, v.def, source, p),
        where: (p: Params) => viewWhereSql(POSTGRES, v.def, p),
        build: v.build,
        ready: v.status === 'ready',
      };
    },
  );

  constructor(private readonly options: PostgresStoreOptions) {
    this.target = postgresTarget(options.url);
    this.queryTimeoutMs = options.queryTimeoutMs ?? 10_000;
  }

  async connect(): Promise<void> {
    if (this.writer) return;
    const writer = openPool(this.target, { max: 2, name: 'store' });
    try {
      await migrate(writer, this.target.schema, 'store', STORE_MIGRATIONS);
    } catch (e: unknown) {
      await writer.end().catch(() => undefined);
      if (e instanceof SluiceError) throw e;
      throw unavailable(e, `the store at ${redactUrl(this.target.url)}`, this.target.url);
    }
    this.writer = writer;
    this.exec = new Executor(writer, (e) => unavailable(e, 'the store'));
    this.reader = openPool(this.target, { max: this.options.readers ?? 4, name: 'query', statementTimeoutMs: this.queryTimeoutMs });
  }

  private executor(): Executor {
    if (!this.exec) throw new RetryAfterError('the store is not connected', 1000);
    return this.exec;
  }

  private pools(): { writer: pg.Pool; reader: pg.Pool } {
    if (!this.writer || !this.reader) throw new RetryAfterError('the store is not connected', 1000);
    return { writer: this.writer, reader: this.reader };
  }

  producedBy(tenant: string, version: number, of?: VersionOf): Promise<EventPosition[]> {
    return producedBy(this.executor().query, tenant, version, of);
  }

  withdraw(tenant: string, version: number, positions: readonly EventPosition[], of?: VersionOf): Promise<number> {
    if (positions.length === 0) return Promise.resolve(0);
    return this.executor().transaction(async (sql) => {
      // The tenant's running builds first (a build's swap locks its row before counts_1m): one
      // that has read the events goes back to before them (backfill.ts).
      const held = await this.backfills.hold(sql, tenant);
      const gone = await withdrawEvents(sql, tenant, version, positions, of);
      await this.backfills.rewind(sql, tenant, held, gone);
      return gone.length;
    });
  }

  async commit(batch: CommitBatch): Promise<CommitResult> {
    const declared = new Set(batch.partitions.map((p) => p.partition));
    for (const r of batch.records) {
      if (!declared.has(r.partition)) throw new NonRetryableError(`record at ${r.partition}:${r.offset} has no partition entry in the batch`);
    }
    const { writer } = this.pools();
    let client: pg.PoolClient;
    try {
      client = await writer.connect();
    } catch (e: unknown) {
      throw new RetryAfterError(`store commit failed: PostgreSQL is not reachable (${(e as Error).message})`, 1000, { cause: e });
    }
    try {
      await this.ensureDays(client, batch.records);
      await client.query('BEGIN');
      const parts = [...batch.partitions].sort((a, b) => a.partition - b.partition);
      await client.query('INSERT INTO applied (p, o, token) SELECT unnest($1::int[]), 0, 0 ON CONFLICT (p) DO NOTHING', [parts.map((p) => p.partition)]);
      const locked = await client.query<{ p: number; o: string; token: string }>('SELECT p, o, token FROM applied WHERE p = ANY($1::int[]) ORDER BY p FOR UPDATE', [
        parts.map((p) => p.partition),
      ]);
      const applied = new Map(locked.rows.map((r) => [r.p, { offset: Number(r.o), token: Number(r.token) }]));
      for (const { partition, token } of parts) {
        const current = applied.get(partition)!;
        if (token < current.token) throw new FencedError(`partition ${partition}: token ${token} is older than ${current.token}; a newer consumer owns it`);
      }
      const positional = batch.records.filter((r) => r.offset > applied.get(r.partition)!.offset);
      const fresh = await this.newKeys(client, positional);
      if (fresh.length > 0) await this.insert(client, fresh);
      await client.query(
        `UPDATE applied SET o = greatest(applied.o, v.o), token = v.token FROM (SELECT unnest($1::int[]) AS p, unnest($2::bigint[]) AS o, unnest($3::bigint[]) AS token) v WHERE applied.p = v.p`,
        [parts.map((p) => p.partition), parts.map((p) => p.upTo), parts.map((p) => p.token)],
      );
      await client.query('COMMIT');
      const storedByTenant = new Map<string, number>();
      for (const r of fresh) storedByTenant.set(r.tenant, (storedByTenant.get(r.tenant) ?? 0) + 1);
      return { stored: fresh.length, skipped: batch.records.length - fresh.length, storedByTenant };
    } catch (e: unknown) {
      await client.query('ROLLBACK').catch(() => undefined);
      if (e instanceof FencedError || e instanceof NonRetryableError) throw e;
      throw classify(e, 'store commit');
    } finally {
      client.release();
    }
  }

  /**
   * The records whose (tenant, idempotency key) the ledger did not hold, now added to it; the
   * others are counted per minute of receipt, so the conservation check sees them end.
   */
  private async newKeys(client: pg.PoolClient, records: LogRecord[]): Promise<LogRecord[]> {
    if (records.length === 0) return [];
    const now = Date.now();
    const inserted = await client.query<{ tenant: string; idempotency_key: string }>(
      `INSERT INTO event_keys (tenant, idempotency_key, stored_at) SELECT t, k, $3 FROM unnest($1::text[], $2::text[]) AS x(t, k)
       ON CONFLICT DO NOTHING RETURNING tenant, idempotency_key`,
      [records.map((r) => r.tenant), records.map((r) => r.idempotencyKey), now],
    );
    const fresh = new Set(inserted.rows.map((r) => `${r.tenant}\u0000${r.idempotency_key}`));
    const out: LogRecord[] = [];
    const dupes = new Map<string, { tenant: string; minute: number; n: number }>();
    for (const r of records) {
      const k = `${r.tenant}\u0000${r.idempotencyKey}`;
      if (fresh.delete(k)) {
        out.push(r);
        continue;
      }
      const minute = r.receivedAt - (r.receivedAt % 60_000);
      const d = dupes.get(`${minute}\u0000${r.tenant}`) ?? { tenant: r.tenant, minute, n: 0 };
      d.n++;
      dupes.set(`${minute}\u0000${r.tenant}`, d);
    }
    if (dupes.size > 0) {
      const ds = [...dupes.values()];
      await client.query(
        `INSERT INTO key_duplicates_1m (tenant, minute, n) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
         ON CONFLICT (tenant, minute) DO UPDATE SET n = key_duplicates_1m.n + excluded.n`,
        [ds.map((d) => d.tenant), ds.map((d) => d.minute), ds.map((d) => d.n)],
      );
    }
    return out;
  }

  /**
   * Adds the rows, their per-minute counts and, for tenants with views, the views' rows. The
   * views are read here, after the commit locked its partitions (see views.ts for why).
   */
  private async insert(client: pg.PoolClient, records: LogRecord[]): Promise<void> {
    const sql: Sql = async (text, values) => (await client.query(text, values)).rows;
    const views = await this.viewTables.ofTenants(sql, [...new Set(records.map((r) => r.tenant))]);
    if (views.length === 0) {
      await this.insertRows(client, 'events', records);
    } else {
      // The batch lands in a temporary table first, so that the views are computed from exactly its rows.
      await client.query('CREATE TEMP TABLE IF NOT EXISTS staging (LIKE events) ON COMMIT DELETE ROWS');
      await this.insertRows(client, 'staging', records);
      await client.query('INSERT INTO events SELECT * FROM staging');
      await this.viewTables.maintain(sql, 'staging', views);
    }
    const rows = countsPerMinute(records);
    await client.query(
      `INSERT INTO counts_1m (tenant, type, minute, n) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
       ON CONFLICT (tenant, type, minute) DO UPDATE SET n = counts_1m.n + excluded.n`,
      [rows.map((a) => a.tenant), rows.map((a) => a.type), rows.map((a) => a.minute), rows.map((a) => a.n)],
    );
  }

  private async insertRows(client: pg.PoolClient, table: 'events' | 'staging', records: LogRecord[]): Promise<void> {
    const storedAt = Date.now();
    const cols: unknown[][] = Array.from({ length: 13 }, () => new Array<unknown>(records.length));
    records.forEach((r, i) => {
      cols[0]![i] = r.tenant;
      cols[1]![i] = r.type;
      cols[2]![i] = r.key;
      cols[3]![i] = r.idempotencyKey;
      cols[4]![i] = r.ts;
      cols[5]![i] = r.receivedAt;
      cols[6]![i] = r.partition;
      cols[7]![i] = r.offset;
      cols[8]![i] = r.origin;
      cols[9]![i] = r.properties;
      cols[10]![i] = r.context;
      cols[11]![i] = r.pipelineVersion ?? 0;
      cols[12]![i] = r.operatorVersion ?? 0;
    });
    await client.query(
      `INSERT INTO ${table} (tenant, type, key, idempotency_key, ts, received_at, partition, "offset", origin, properties, context, pipeline_version, operator_version, stored_at)
       SELECT t, y, k, i, ts, r, p, o, g, pr::jsonb, c::jsonb, pv, ov, $14
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::int[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::int[], $13::int[])
         AS x(t, y, k, i, ts, r, p, o, g, pr, c, pv, ov)`,
      [...cols, storedAt],
    );
  }

  /** Creates the daily partitions a batch needs (outside its transaction: DDL takes strong locks briefly). */
  private async ensureDays(client: pg.PoolClient, records: readonly LogRecord[]): Promise<void> {
    const days = new Set<number>();
    for (const r of records) {
      const day = Math.floor(r.ts / DAY) * DAY;
      if (!this.days.has(day)) days.add(day);
    }
    for (const day of days) {
      const name = `events_${day < 0 ? 'm' : ''}${new Date(day).toISOString().slice(0, 10).replace(/-/g, '')}`;
      try {
        await client.query(`CREATE TABLE IF NOT EXISTS ${name} PARTITION OF events FOR VALUES FROM (${day}) TO (${day + DAY})`);
      } catch (e: unknown) {
        // Another worker created it first (a race between IF NOT EXISTS and the create).
        if ((e as { code?: string }).code !== '42P07') throw e;
      }
      this.days.add(day);
    }
  }

  async appliedOffsets(): Promise<Map<number, number>> {
    const r = await this.read<{ p: number; o: string }>('SELECT p, o FROM applied WHERE o > 0');
    return new Map(r.map((row) => [row.p, Number(row.o)]));
  }

  async counts(q: CountQuery): Promise<CountRow[]> {
    const size = INTERVAL_MS[q.interval];
    const params: unknown[] = [q.tenant, q.from, q.to];
    let where = 'tenant = $1 AND minute >= $2 AND minute < $3';
    if (q.type !== null) {
      params.push(q.type);
      where += ' AND type = $4';
    }
    const rows = await this.read<{ bucket: string; count: string }>(
      `SELECT minute - ((minute % ${size}) + ${size}) % ${size} AS bucket, sum(n) AS count FROM counts_1m WHERE ${where} GROUP BY 1 ORDER BY 1`,
      params,
    );
    return rows.map((r) => ({ bucket: Number(r.bucket), count: Number(r.count) }));
  }

  async query(q: QuerySpec, cap: number): Promise<QueryAnswer> {
    const ready = q.source === 'raw' || q.received ? [] : (await this.views.list(q.tenant)).filter((v) => v.status === 'ready');
    const view = chooseView(ready as LiveView[], q);
    const { sql, params } = view ? viewQuerySql(POSTGRES, q, view.table, view.def, residualFilters(view.def, q), cap) : rawQuerySql(POSTGRES, q, cap);
    const rows = await this.readRows(sql, params);
    return { rows: rows.map((row) => row.map(plain)), source: view ? `view:${view.name}` : 'raw' };
  }

  /** See Store.seriesScan: one scan of the tenant's raw events (series-scan.ts). */
  async seriesScan(scan: SeriesScan): Promise<SeriesScanAnswer> {
    const timeoutMs = scan.timeoutMs ?? this.queryTimeoutMs;
    try {
      return await scanSeries(this.pools().reader, scan, timeoutMs);
    } catch (e: unknown) {
      throw readError(e, timeoutMs);
    }
  }

  async searchEvents(s: EventSearch): Promise<StoredEvent[]> {
    const p = new Params();
    let where = `tenant = ${p.add(s.tenant)} AND ts >= ${p.add(s.from)} AND ts < ${p.add(s.to)}`;
    if (s.type !== undefined) where += ` AND type = ${p.add(s.type)}`;
    if (s.key !== undefined) where += ` AND key = ${p.add(s.key)}`;
    if (s.before) {
      where += ` AND (ts, partition, "offset") < (${p.add(s.before.ts)}, ${p.add(s.before.partition)}, ${p.add(s.before.offset)})`;
    }
    const limit = Math.max(1, Math.min(s.limit, 10_000));
    const rows = await this.read<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE ${where} ORDER BY ts DESC, partition DESC, "offset" DESC LIMIT ${limit}`, p.values);
    return rows.map(toStoredEvent);
  }

  async findEvent(tenant: string, idempotencyKey: string): Promise<StoredEvent | null> {
    const rows = await this.read<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE tenant = $1 AND idempotency_key = $2 LIMIT 1`, [tenant, idempotencyKey]);
    return rows[0] ? toStoredEvent(rows[0]) : null;
  }

  async rawStats(tenant: string): Promise<{ events: number; distinctKeys: number }> {
    const [r] = await this.read<{ events: string; keys: string }>('SELECT count(*) AS events, count(DISTINCT idempotency_key) AS keys FROM events WHERE tenant = $1', [tenant]);
    return { events: Number(r!.events), distinctKeys: Number(r!.keys) };
  }

  async recent(tenant: string, type: string, limit: number): Promise<string[]> {
    const rows = await this.read<{ properties: string }>(
      'SELECT properties::text AS properties FROM events WHERE tenant = $1 AND type = $2 ORDER BY received_at DESC LIMIT $3',
      [tenant, type, Math.max(1, Math.min(limit, 10_000))],
    );
    return rows.map((r) => r.properties);
  }

  /** Events that ended in the store per minute of receipt: stored, or skipped as a key already stored. */
  async storedByMinute(from: number, to: number): Promise<MinuteCount[]> {
    const rows = await this.read<{ tenant: string; minute: string; n: string }>(
      `SELECT tenant, minute, sum(n) AS n FROM (
         SELECT tenant, received_at - received_at % 60000 AS minute, count(*) AS n FROM events WHERE received_at >= $1 AND received_at < $2 GROUP BY 1, 2
         UNION ALL SELECT tenant, minute, n FROM key_duplicates_1m WHERE minute >= $1 AND minute < $2
       ) x GROUP BY 1, 2`,
      [from, to],
    );
    return rows.map((r) => ({ tenant: r.tenant, minute: Number(r.minute), n: Number(r.n) }));
  }

  private async read<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    try {
      return (await this.pools().reader.query<R>(sql, params)).rows;
    } catch (e: unknown) {
      throw readError(e, this.queryTimeoutMs);
    }
  }

  private async readRows(sql: string, params: unknown[]): Promise<unknown[][]> {
    try {
      return (await this.pools().reader.query({ text: sql, values: params, rowMode: 'array' })).rows as unknown[][];
    } catch (e: unknown) {
      throw readError(e, this.queryTimeoutMs);
    }
  }

  async health(): Promise<StoreHealth> {
    if (!this.reader) return { ok: false, detail: 'not connected' };
    try {
      await this.reader.query('SELECT 1');
      return { ok: true };
    } catch (e: unknown) {
      return { ok: false, detail: `PostgreSQL: ${(e as Error).message}` };
    }
  }

  async close(): Promise<void> {
    const pools = [this.writer, this.reader];
    this.writer = this.reader = null;
    this.exec = null;
    await Promise.all(pools.map((p) => p?.end().catch(() => undefined)));
  }
}

interface EventRow {
  type: string;
  key: string;
  idempotency_key: string;
  ts: string;
  received_at: string;
  stored_at: string;
  partition: number;
  offset: string;
  origin: string;
  properties: string;
  context: string;
  pipeline_version: number;
  operator_version: number;
}

const EVENT_COLUMNS = `type, key, idempotency_key, ts, received_at, stored_at, partition, "offset", origin, properties::text AS properties, context::text AS context, pipeline_version, operator_version`;

function toStoredEvent(r: EventRow): StoredEvent {
  return {
    type: r.type,
    key: r.key,
    idempotencyKey: r.idempotency_key,
    ts: Number(r.ts),
    receivedAt: Number(r.received_at),
    storedAt: Number(r.stored_at),
    partition: r.partition,
    offset: Number(r.offset),
    origin: r.origin as StoredEvent['origin'],
    properties: r.properties,
    context: r.context,
    pipelineVersion: Number(r.pipeline_version ?? 0),
    operatorVersion: Number(r.operator_version ?? 0),
  };
}

/** A PostgreSQL value as JSON can carry it: bigint and numeric come back as text. */
function plain(v: unknown): Cell {
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'string') return v;
  return String(v);
}

function readError(e: unknown, timeoutMs: number): Error {
  if ((e as { code?: string }).code === '57014') return new RetryAfterError(`the query ran past its ${timeoutMs} ms timeout`, 0, { cause: e });
  if (e instanceof SluiceError || e instanceof RetryAfterError) return e;
  const code = (e as { code?: string }).code;
  if (code === undefined || /^(08|57P)/.test(code)) return unavailable(e, 'the store');
  return e as Error;
}
