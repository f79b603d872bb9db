import { randomBytes } from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { QuerySpec } from '../../core/query.js';
import type { LogRecord } from '../../core/types.js';
import { MAX_TYPED_PROPERTIES, PROMOTION, typedBackfillType, type TypedColumns, type TypedColumnsState } from '../../ports/typed-columns.js';
import type { BackfillTarget } from './backfill.js';
import { Params } from './query-sql.js';
import { fieldsOf, typedFields, typedFillSql, typedTableDdl, type TypedSet } from './typed-sql.js';

/**
 * Typed columns on DuckDB (see ports/typed-columns.ts; the tables in typed-sql.ts), their
 * definitions kept in the store beside the tables, changed in one transaction with them.
 *
 * States of a set: building (maintained at commit; a backfill `typed:<type>` fills in the past
 * and, in its last transaction, makes it ready and drops the set it replaces) → ready. At most
 * one ready and one building set per (tenant, type); a new declaration while one builds
 * replaces the building one (its backfill stops as superseded).
 *
 * The in-memory mirror is reloaded after every transaction that changes the definitions; it
 * is valid because the store is the only writer.
 */
export const TYPED_SCHEMA = `
  CREATE TABLE IF NOT EXISTS typed_tables (
    tbl VARCHAR PRIMARY KEY, tenant VARCHAR NOT NULL, type VARCHAR NOT NULL, properties VARCHAR NOT NULL,
    status VARCHAR NOT NULL, build VARCHAR, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL
  );
  CREATE TABLE IF NOT EXISTS typed_promotions (
    tenant VARCHAR NOT NULL, type VARCHAR NOT NULL, property VARCHAR NOT NULL,
    promoted_at BIGINT NOT NULL, last_read BIGINT NOT NULL, PRIMARY KEY (tenant, type, property)
  );
`;

/**
 * (tenant, type, property) as one map key: a JSON array, so that any name (one holding "\u0000"
 * too) is read back as itself, and the keys of a tenant, or of a tenant's type, share a prefix
 * that no other tenant's or type's key has (`keyPrefix`).
 */
function usageKey(tenant: string, type: string, property: string): string {
  return JSON.stringify([tenant, type, property]);
}

/** The prefix of the keys of `tenant`, or of its `type`. */
function keyPrefix(tenant: string, type?: string): string {
  return JSON.stringify(type === undefined ? [tenant] : [tenant, type]).slice(0, -1) + ',';
}

function parseKey(k: string): [tenant: string, type: string, property: string] {
  return JSON.parse(k) as [string, string, string];
}

/** Undeclared properties whose raw reads are tracked at once (memory bound); past it, new ones wait for old ones to age out. */
const MAX_TRACKED = 10_000;
/** Of them, those of one tenant: one tenant's reads of many names do not stop the others' from counting. */
const MAX_TRACKED_PER_TENANT = 1_000;

interface LiveSet extends TypedSet {
  status: 'building' | 'ready';
  build: string | null;
}

const COLUMNS = 'tbl, tenant, type, properties, status, build';

export class DuckdbTypedColumns implements TypedColumns {
  private byTenant = new Map<string, LiveSet[]>();

  constructor(private readonly locked: <T>(fn: (c: DuckDBConnection) => Promise<T>) => Promise<T>) {}

  /** Times (ms) of the latest raw queries that read an undeclared property, at most PROMOTE_AFTER_QUERIES each. */
  private readonly reads = new Map<string, number[]>();
  /** Promoted properties as stored (their last read is written, never read back here). */
  private promotions = new Set<string>();
  /** Promotions decided and reads of promoted properties since they were last written. */
  private readonly unsaved = new Map<string, number>();

  async load(c: DuckDBConnection): Promise<void> {
    const promotions = new Set<string>();
    for (const [tenant, type, property] of (await c.runAndReadAll('SELECT tenant, type, property FROM typed_promotions')).getRows()) {
      promotions.add(usageKey(String(tenant), String(type), String(property)));
    }
    this.promotions = promotions;
    const next = new Map<string, LiveSet[]>();
    for (const [tbl, tenant, type, properties, status, build] of (await c.runAndReadAll(`SELECT ${COLUMNS} FROM typed_tables ORDER BY tenant, type`)).getRows()) {
      const set: LiveSet = { table: String(tbl), tenant: String(tenant), type: String(type), ...typedFields(JSON.parse(String(properties)) as string[]), status: String(status) as LiveSet['status'], build: build === null ? null : String(build) };
      next.set(set.tenant, [...(next.get(set.tenant) ?? []), set]);
    }
    this.byTenant = next;
  }

  private sets(tenant: string, type: string): LiveSet[] {
    return (this.byTenant.get(tenant) ?? []).filter((s) => s.type === type);
  }

  /** The set new rows go to last: the building one, else the ready one. */
  private newest(sets: readonly LiveSet[]): LiveSet | undefined {
    return sets.find((s) => s.status === 'building') ?? sets.find((s) => s.status === 'ready');
  }

  /** The set that answers queries on (tenant, type), if built. */
  ready(tenant: string, type: string | null): TypedSet | null {
    return type === null ? null : (this.sets(tenant, type).find((s) => s.status === 'ready') ?? null);
  }

  /** Whether a tenant has typed columns: its commits go through the staging table. */
  has(tenant: string): boolean {
    return this.byTenant.has(tenant);
  }

  async list(tenant: string): Promise<TypedColumnsState[]> {
    return (this.byTenant.get(tenant) ?? []).map((s) => ({
      tenant: s.tenant,
      type: s.type,
      properties: s.properties,
      status: s.status,
      build: s.build,
      promoted: s.properties.filter((name) => this.promotions.has(usageKey(s.tenant, s.type, name))),
    }));
  }

  declare(tenant: string, type: string, names: readonly string[]): Promise<{ changed: boolean }> {
    // The first MAX_TYPED_PROPERTIES in the order given (a schema's before promoted ones), kept sorted.
    const wanted = typedFields([...new Set(names)]).properties.slice(0, MAX_TYPED_PROPERTIES).sort();
    if (this.refused.has(JSON.stringify([tenant, type, wanted]))) return Promise.resolve({ changed: false });
    return this.locked(async (c) => {
      const sets = this.sets(tenant, type);
      const newest = this.newest(sets);
      if ((newest ? JSON.stringify(newest.properties) : '[]') === JSON.stringify(wanted)) return { changed: false };
      const now = BigInt(Date.now());
      await c.run('BEGIN TRANSACTION');
      try {
        // The building set is superseded; with nothing declared, the ready one goes too.
        for (const s of sets.filter((s) => s.status === 'building' || wanted.length === 0)) {
          await c.run(`DROP TABLE IF EXISTS ${s.table}`);
          await c.run('DELETE FROM typed_tables WHERE tbl = $1', [s.table]);
        }
        if (wanted.length > 0) {
          const table = `typed_${randomBytes(8).toString('hex')}`;
          await c.run(typedTableDdl(table, wanted.length));
          await c.run(`INSERT INTO typed_tables (${COLUMNS}, created_at, updated_at) VALUES ($1, $2, $3, $4, 'building', NULL, $5, $5)`, [table, tenant, type, JSON.stringify(wanted), now]);
        }
        await c.run('COMMIT');
      } catch (e) {
        await c.run('ROLLBACK').catch(() => undefined);
        throw e;
      }
      await this.load(c);
      return { changed: true };
    });
  }

  /**
   * A query read raw events (from the JSON or from typed columns, not from a view) at `now`
   * (ms): each top-level property it reads that has no column counts towards its promotion
   * (PROMOTION); a promoted one is marked as read. In memory; written by `promoted`.
   */
  noteQuery(q: QuerySpec, now: number): void {
    const event = q.event;
    if (event === null) return;
    const newest = this.newest(this.sets(q.tenant, event));
    // Each property once per query, however many of its measures and filters read it.
    const read = new Set(fieldsOf(q).flatMap((f) => (f.column === 'properties' && f.names.length === 1 ? [f.names[0]!] : [])));
    for (const name of read) {
      const k = usageKey(q.tenant, event, name);
      if (this.promotions.has(k) || this.unsaved.has(k)) {
        this.unsaved.set(k, now);
        continue;
      }
      if (newest?.properties.includes(name)) continue;
      const earlier = this.reads.get(k);
      const full = () => this.reads.size >= MAX_TRACKED || (this.tracked.get(q.tenant) ?? 0) >= MAX_TRACKED_PER_TENANT;
      if (!earlier && full()) {
        this.forgetOld(now);
        if (full()) continue;
      }
      const times = [...(earlier ?? []).filter((t) => t > now - PROMOTION.PROMOTE_WINDOW_MS && t <= now), now].slice(-PROMOTION.PROMOTE_AFTER_QUERIES);
      if (!earlier) this.tracked.set(q.tenant, (this.tracked.get(q.tenant) ?? 0) + 1);
      this.reads.set(k, times);
      if (times.length < PROMOTION.PROMOTE_AFTER_QUERIES) continue;
      const decided = [...new Set([...this.promotions.keys(), ...this.unsaved.keys()])];
      const ofType = decided.filter((x) => x.startsWith(keyPrefix(q.tenant, event))).length;
      if (ofType >= PROMOTION.PROMOTED_PER_TYPE) continue;
      // A type new to the tenant's promotions: at most PROMOTED_TYPES_PER_TENANT of them.
      const types = new Set(decided.filter((x) => x.startsWith(keyPrefix(q.tenant))).map((x) => parseKey(x)[1]));
      if (ofType === 0 && types.size >= PROMOTION.PROMOTED_TYPES_PER_TENANT) continue;
      this.untrack(k);
      this.unsaved.set(k, now);
    }
  }

  /** How many of `reads` are each tenant's. */
  private readonly tracked = new Map<string, number>();

  private untrack(k: string): void {
    if (!this.reads.delete(k)) return;
    const tenant = parseKey(k)[0];
    const n = (this.tracked.get(tenant) ?? 0) - 1;
    if (n > 0) this.tracked.set(tenant, n);
    else this.tracked.delete(tenant);
  }

  private forgetOld(now: number): void {
    for (const [k, times] of this.reads) if (Math.max(...times) <= now - PROMOTION.PROMOTE_WINDOW_MS) this.untrack(k);
  }

  /** See TypedColumns.promoted: writes the tenant's new promotions and reads, drops the stale ones, answers the rest. */
  promoted(tenant: string, now: number): Promise<Map<string, string[]>> {
    return this.locked(async (c) => {
      const prefix = keyPrefix(tenant);
      for (const [k, at] of [...this.unsaved].filter(([k]) => k.startsWith(prefix))) {
        const [, type, property] = parseKey(k);
        await c.run(
          `INSERT INTO typed_promotions VALUES ($1, $2, $3, $4, $4) ON CONFLICT (tenant, type, property) DO UPDATE SET last_read = greatest(typed_promotions.last_read, excluded.last_read)`,
          [tenant, type, property, BigInt(at)],
        );
        this.unsaved.delete(k);
      }
      await c.run('DELETE FROM typed_promotions WHERE tenant = $1 AND last_read <= $2', [tenant, BigInt(now - PROMOTION.DEMOTE_AFTER_MS)]);
      const out = new Map<string, string[]>();
      for (const k of [...this.promotions.keys()].filter((k) => k.startsWith(prefix))) this.promotions.delete(k);
      for (const [type, property] of (await c.runAndReadAll('SELECT type, property FROM typed_promotions WHERE tenant = $1 ORDER BY type, promoted_at, property', [tenant])).getRows()) {
        this.promotions.add(usageKey(tenant, String(type), String(property)));
        out.set(String(type), [...(out.get(String(type)) ?? []), String(property)]);
      }
      return out;
    });
  }

  /** Inside a commit's transaction: adds the staged rows to the typed columns of their (tenant, type). */
  async maintain(c: DuckDBConnection, staging: string, records: readonly LogRecord[]): Promise<void> {
    const seen = new Set<string>();
    for (const r of records) {
      const k = `${r.tenant}\u0000${r.type}`;
      if (seen.has(k) || !this.byTenant.has(r.tenant)) continue;
      seen.add(k);
      for (const set of this.sets(r.tenant, r.type)) {
        const p = new Params();
        try {
          await c.run(typedFillSql(set.table, set, staging, p), p.values);
        } catch (e: unknown) {
          throw new TypedFillError(set.table, set.tenant, set.type, e);
        }
      }
    }
  }

  /**
   * Drops a set of columns whose fill failed a commit (see TypedFillError), on the writer `c`
   * outside any transaction, and refuses the same declaration until the process restarts: the
   * columns are an optimisation, and a commit must never wait for them. Queries read the JSON.
   */
  async drop(c: DuckDBConnection, table: string): Promise<void> {
    const set = [...this.byTenant.values()].flat().find((s) => s.table === table);
    if (!set) return;
    this.refused.add(JSON.stringify([set.tenant, set.type, set.properties]));
    await c.run('BEGIN TRANSACTION');
    try {
      await c.run(`DROP TABLE IF EXISTS ${table}`);
      await c.run('DELETE FROM typed_tables WHERE tbl = $1', [table]);
      await c.run('COMMIT');
    } catch (e) {
      await c.run('ROLLBACK').catch(() => undefined);
      throw e;
    }
    await this.load(c);
  }

  /** Declarations whose columns failed a commit (tenant, type, properties), refused until restart. */
  private readonly refused = new Set<string>();

  /** What a backfill `typed:<type>` builds: the building set of that type; null when there is none. */
  target(tenant: string, name: string): BackfillTarget | null {
    const type = typedBackfillType(name);
    const set = type === null ? undefined : this.sets(tenant, type).find((s) => s.status === 'building');
    if (!set) return null;
    return {
      table: set.table,
      ddl: (t) => typedTableDdl(t, set.fields.length),
      // Rows, not buckets: the swap replaces the rows of the range, by their event time.
      bucketColumn: 'epoch_ms(ts)',
      grainMs: 60_000,
      events: 'count(*)',
      order: 'ts',
      aggregate: (into, source, p) => typedFillSql(into, set, source, p),
      where: (p) => `type = ${p.add(set.type)}`,
      build: set.build,
    };
  }

  /** In the transaction that starts backfill `id` of `name`. */
  async started(c: DuckDBConnection, tenant: string, name: string, id: string): Promise<void> {
    const type = typedBackfillType(name);
    if (type !== null) await c.run(`UPDATE typed_tables SET build = $1, updated_at = $2 WHERE tenant = $3 AND type = $4 AND status = 'building'`, [id, BigInt(Date.now()), tenant, type]);
  }

  /** In the last transaction of backfill `id`: its set is ready, and replaces the ready one. */
  async finished(c: DuckDBConnection, id: string): Promise<void> {
    const built = [...this.byTenant.values()].flat().find((s) => s.build === id && s.status === 'building');
    if (!built) return;
    for (const old of this.sets(built.tenant, built.type).filter((s) => s.status === 'ready')) {
      await c.run(`DROP TABLE IF EXISTS ${old.table}`);
      await c.run('DELETE FROM typed_tables WHERE tbl = $1', [old.table]);
    }
    await c.run(`UPDATE typed_tables SET status = 'ready', updated_at = $1 WHERE tbl = $2`, [BigInt(Date.now()), built.table]);
  }
}

/**
 * A typed-columns fill that failed inside a commit: the store drops that set (DuckdbTypedColumns.drop)
 * and commits the batch again without it, instead of holding every tenant's commits on it.
 */
export class TypedFillError extends Error {
  constructor(
    readonly table: string,
    readonly tenant: string,
    readonly type: string,
    cause: unknown,
  ) {
    super(`filling the typed columns of type "${type}" failed: ${String((cause as Error)?.message ?? cause).split('\n')[0]}`, { cause });
    this.name = 'TypedFillError';
  }
}
