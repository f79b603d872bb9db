import type { DuckDBValue } from '@duckdb/node-api';
import type { Cell, StoredEvent } from '../../ports/store.js';

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
