import type { EventPosition, VersionOf } from '../../ports/store.js';
import { versionColumn } from '../version-column.js';
import type { Sql } from './database.js';

/**
 * A rolled-back pipeline version's raw events on PostgreSQL, found and taken out
 * (Store.producedBy and Store.withdraw). The key ledger's entries go with the events, so that
 * the re-derived events (same keys) are stored again.
 */
export async function producedBy(sql: Sql, tenant: string, version: number, of?: VersionOf): Promise<EventPosition[]> {
  const rows = await sql<{ partition: number; offset: string; ts: string }>(
    `SELECT partition, "offset", ts FROM events WHERE tenant = $1 AND ${versionColumn(of)} = $2 ORDER BY partition, "offset"`,
    [tenant, version],
  );
  return rows.map((r) => ({ partition: Number(r.partition), offset: Number(r.offset), ts: Number(r.ts) }));
}

/** Deletes the events, their ledger keys and their counts, inside the caller's transaction. Answers the times of the events deleted. */
export async function withdrawEvents(sql: Sql, tenant: string, version: number, positions: readonly EventPosition[], of?: VersionOf): Promise<number[]> {
  const gone = await sql<{ type: string; ts: string; idempotency_key: string }>(
    `DELETE FROM events e USING unnest($3::int[], $4::bigint[]) AS w(p, o)
     WHERE e.tenant = $1 AND e.${versionColumn(of)} = $2 AND e.partition = w.p AND e."offset" = w.o
     RETURNING e.type, e.ts, e.idempotency_key`,
    [tenant, version, positions.map((x) => x.partition), positions.map((x) => x.offset)],
  );
  if (gone.length === 0) return [];
  await sql('DELETE FROM event_keys WHERE tenant = $1 AND idempotency_key = ANY($2::text[])', [tenant, gone.map((g) => g.idempotency_key)]);
  const counts = new Map<string, { type: string; minute: number; n: number }>();
  for (const g of gone) {
    const minute = Math.floor(Number(g.ts) / 60_000) * 60_000;
    const k = `${g.type}\u0000${minute}`;
    const c = counts.get(k) ?? { type: g.type, minute, n: 0 };
    c.n++;
    counts.set(k, c);
  }
  const cs = [...counts.values()];
  await sql(
    `UPDATE counts_1m SET n = counts_1m.n - d.n FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS d(type, minute, n)
     WHERE counts_1m.tenant = $1 AND counts_1m.type = d.type AND counts_1m.minute = d.minute`,
    [tenant, cs.map((c) => c.type), cs.map((c) => c.minute), cs.map((c) => c.n)],
  );
  return gone.map((g) => Number(g.ts));
}
