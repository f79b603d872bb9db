import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import type { CountQuery, CountRow, MinuteCount } from '../../core/types.js';
import type { Cell, EventSearch, SeriesScan, SeriesScanAnswer, StoredEvent } from '../../ports/store.js';
import { scanAnswer, scanIsEmpty } from '../sql/series-scan.js';
import { Params } from './query-sql.js';
import { seriesScanSql } from './series-scan-sql.js';
import { countsSql } from './sql.js';

/** The columns of `events` a stored event is read from, in toStoredEvent's order. */
export const EVENT_COLUMNS = `type, key, idempotency_key, epoch_ms(ts), epoch_ms(received_at), epoch_ms(stored_at), partition, "offset", origin, properties, context, pipeline_version, operator_version`;

export function toStoredEvent(row: DuckDBValue[]): StoredEvent {
  const [type, key, idem, ts, receivedAt, storedAt, partition, offset, origin, properties, context, pipelineVersion, operatorVersion] = row;
  return {
    type: String(type),
    key: String(key),
    idempotencyKey: String(idem),
    ts: Number(ts),
    receivedAt: Number(receivedAt),
    storedAt: Number(storedAt),
    partition: Number(partition),
    offset: Number(offset),
    origin: String(origin) as StoredEvent['origin'],
    properties: String(properties),
    context: String(context),
    pipelineVersion: Number(pipelineVersion ?? 0),
    operatorVersion: Number(operatorVersion ?? 0),
  };
}

/** A DuckDB value as JSON can carry it (query answers hold numbers, text and nulls). */
export function plain(v: DuckDBValue): Cell {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return Number(v);
  return String(v);
}

/** The read pool's lane for sluice's own reads (the conservation check). */
const SYSTEM_LANE = '\u0000sluice';

/**
 * Runs a read of `tenant` on a reader of the store's fair pool, interrupted past `timeoutMs`
 * (the store's query timeout when not given); see DuckdbStore.withTimeout.
 */
export type Read = <T>(tenant: string, fn: (c: DuckDBConnection) => Promise<T>, signal?: AbortSignal, timeoutMs?: number) => Promise<T>;

/** The Store's reads of raw events (counts, searches, scans, samples), each on a reader of the pool. */
export class StoredRows {
  constructor(private readonly read: Read) {}

  async counts(q: CountQuery, signal?: AbortSignal): Promise<CountRow[]> {
    const { sql, params } = countsSql(q);
    const rows = await this.read(q.tenant, (c) => c.runAndReadAll(sql, params), signal);
    return rows.getRows().map(([bucket, count]) => ({ bucket: Number(bucket), count: Number(count) }));
  }

  /** See Store.seriesScan: one scan of the tenant's raw events (series-scan-sql.ts). */
  async seriesScan(scan: SeriesScan, signal?: AbortSignal): Promise<SeriesScanAnswer> {
    if (scanIsEmpty(scan)) return scanAnswer(0, () => null);
    const { sql, params } = seriesScanSql(scan);
    const r = await this.read(scan.tenant, (c) => c.runAndReadAll(sql, params), signal, scan.timeoutMs);
    const cols = r.getColumns() as (number | null)[][];
    return scanAnswer(cols[0]?.length ?? 0, (c, k) => cols[c]?.[k]);
  }

  async searchEvents(s: EventSearch, signal?: AbortSignal): Promise<StoredEvent[]> {
    const p = new Params();
    let where = `tenant = ${p.add(s.tenant)} AND ts >= epoch_ms(${p.add(BigInt(s.from))}::BIGINT) AND ts < epoch_ms(${p.add(BigInt(s.to))}::BIGINT)`;
    if (s.type !== undefined) where += ` AND type = ${p.add(s.type)}`;
    if (s.key !== undefined) where += ` AND key = ${p.add(s.key)}`;
    if (s.before) {
      const [ts, part, off] = [p.add(BigInt(s.before.ts)), p.add(s.before.partition), p.add(BigInt(s.before.offset))];
      where += ` AND (epoch_ms(ts) < ${ts} OR (epoch_ms(ts) = ${ts} AND (partition < ${part} OR (partition = ${part} AND "offset" < ${off}))))`;
    }
    const r = await this.read(
      s.tenant,
      (c) => c.runAndReadAll(`SELECT ${EVENT_COLUMNS} FROM events WHERE ${where} ORDER BY ts DESC, partition DESC, "offset" DESC LIMIT ${Math.max(1, Math.min(s.limit, 10_000))}`, p.values),
      signal,
    );
    return r.getRows().map(toStoredEvent);
  }

  async findEvent(tenant: string, idempotencyKey: string): Promise<StoredEvent | null> {
    const r = await this.read(tenant, (c) => c.runAndReadAll(`SELECT ${EVENT_COLUMNS} FROM events WHERE tenant = $1 AND idempotency_key = $2 LIMIT 1`, [tenant, idempotencyKey]));
    const row = r.getRows()[0];
    return row ? toStoredEvent(row) : null;
  }

  async storedByMinute(from: number, to: number): Promise<MinuteCount[]> {
    // sluice's own check (conservation): a lane of its own, as if a tenant.
    const r = await this.read(SYSTEM_LANE, (c) =>
      c.runAndReadAll(
        `SELECT tenant, (epoch_ms(received_at) // 60000) * 60000 AS minute, count(*) AS n FROM events
         WHERE received_at >= epoch_ms(?::BIGINT) AND received_at < epoch_ms(?::BIGINT) GROUP BY ALL`,
        [BigInt(from), BigInt(to)],
      ),
    );
    return r.getRows().map(([tenant, minute, n]) => ({ tenant: String(tenant), minute: Number(minute), n: Number(n) }));
  }

  async rawStats(tenant: string): Promise<{ events: number; distinctKeys: number }> {
    const r = await this.read(tenant, (c) =>
      c.runAndReadAll('SELECT count(*), count(DISTINCT idempotency_key) FROM events WHERE tenant = ?', [tenant]),
    );
    const [events, distinctKeys] = r.getRows()[0]!;
    return { events: Number(events), distinctKeys: Number(distinctKeys) };
  }

  async recent(tenant: string, type: string, limit: number): Promise<string[]> {
    const r = await this.read(tenant, (c) =>
      c.runAndReadAll('SELECT properties FROM events WHERE tenant = ? AND type = ? ORDER BY received_at DESC LIMIT ?', [tenant, type, Math.max(1, Math.min(limit, 10_000))]),
    );
    return r.getRows().map(([p]) => String(p));
  }
}
