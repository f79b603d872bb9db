import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import type { EventPosition, VersionOf } from '../../ports/store.js';
import { shadow } from '../backfill-plan.js';
import { versionColumn } from '../version-column.js';

/**
 * A rolled-back pipeline version's raw events, found and taken out (Store.producedBy and
 * Store.withdraw): the positions to delete go into a temporary table, narrowed to the rows the
 * version produced, then one statement takes what they added off `counts_1m`, one deletes
 * their rows from the tenant's typed columns and one deletes them, and the tenant's running
 * builds start over, in the caller's transaction.
 */
export async function producedBy(c: DuckDBConnection, tenant: string, version: number, of?: VersionOf): Promise<EventPosition[]> {
  const r = await c.runAndReadAll(`SELECT partition, "offset", epoch_ms(ts) FROM events WHERE tenant = ? AND ${versionColumn(of)} = ? ORDER BY partition, "offset"`, [tenant, version]);
  return r.getRows().map(([p, o, ts]) => ({ partition: Number(p), offset: Number(o), ts: Number(ts) }));
}

const CHUNK = 1_000;

/** Deletes the events and their counts; runs inside the caller's transaction. Answers how many were deleted. */
export async function withdrawEvents(c: DuckDBConnection, tenant: string, version: number, positions: readonly EventPosition[], of?: VersionOf): Promise<number> {
  await c.run('CREATE TEMP TABLE IF NOT EXISTS withdrawn (p INTEGER, o BIGINT)');
  await c.run('DELETE FROM withdrawn');
  for (let i = 0; i < positions.length; i += CHUNK) {
    const chunk = positions.slice(i, i + CHUNK);
    const params: DuckDBValue[] = [];
    for (const x of chunk) params.push(x.partition, BigInt(x.offset));
    await c.run(`INSERT INTO withdrawn VALUES ${chunk.map(() => '(?, ?)').join(', ')}`, params);
  }
  // Only the positions of the tenant's events that this version produced (a position may hold another version's event, or none any more).
  await c.run(
    `DELETE FROM withdrawn WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.tenant = $1 AND e.${versionColumn(of)} = $2 AND e.partition = withdrawn.p AND e."offset" = withdrawn.o)`,
    [tenant, version],
  );
  const match = `tenant = $1 AND EXISTS (SELECT 1 FROM withdrawn w WHERE w.p = events.partition AND w.o = events."offset")`;
  await c.run(
    `UPDATE counts_1m SET n = counts_1m.n - d.n
     FROM (SELECT type, (epoch_ms(ts) // 60000) * 60000 AS minute, count(*) AS n FROM events WHERE ${match} GROUP BY ALL) d
     WHERE counts_1m.tenant = $1 AND counts_1m.type = d.type AND counts_1m.minute = d.minute`,
    [tenant],
  );
  // The same events' rows in the tenant's typed columns (typed-columns.ts), by position.
  const tables = (await c.runAndReadAll('SELECT tbl FROM typed_tables WHERE tenant = $1', [tenant])).getRows().map(([t]) => String(t));
  for (const t of tables) {
    await c.run(`DELETE FROM ${t} WHERE EXISTS (SELECT 1 FROM withdrawn w WHERE w.p = ${t}.partition AND w.o = ${t}."offset")`);
  }
  const r = await c.runAndReadAll(`DELETE FROM events WHERE ${match} RETURNING 1`, [tenant]);
  if (r.getRows().length > 0) await restartBuilds(c, tenant);
  return r.getRows().length;
}

/**
 * The tenant's running builds (backfill.ts) start over, from their range's start and the same
 * snapshot, which no longer holds the withdrawn events: a build may have read them already, and
 * its swap would put them back (in counts_1m or typed columns, which a repair does not rebuild
 * after). A chunk running meanwhile on the build's own connection conflicts with this and is
 * tried again. Left as it is: a view's whole-history build past its range, whose catch-up has
 * read events beyond the range that a start over would miss; the repair's rebuild of every view
 * over the withdrawn events' range supersedes it.
 */
async function restartBuilds(c: DuckDBConnection, tenant: string): Promise<void> {
  const ids = (
    await c.runAndReadAll(
      `SELECT id FROM backfills b WHERE tenant = $1 AND status = 'running'
       AND NOT (cursor >= range_to AND whole AND EXISTS (SELECT 1 FROM views v WHERE v.build = b.id))`,
      [tenant],
    )
  ).getRows().map(([id]) => String(id));
  for (const id of ids) {
    await c.run(`DELETE FROM ${shadow(id)}`);
    await c.run('UPDATE backfills SET cursor = range_from, done = 0, updated_at = $2 WHERE id = $1', [id, BigInt(Date.now())]);
  }
}
