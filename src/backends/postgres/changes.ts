import type { Sql } from './database.js';

/** How the PostgreSQL catalog records a change: an audit entry, and a new epoch (Catalog.epoch) for the caches of every process. */

/** Moves the epoch (Catalog.epoch); call it inside the transaction of the change. */
export async function bumpEpoch(sql: Sql): Promise<void> {
  await sql(`UPDATE catalog_meta SET v = v + 1 WHERE k = 'epoch'`);
}

export async function insertAudit(sql: Sql, e: { tenant: string; actor: string; action: string; subject: string; detail: string }, at: number): Promise<void> {
  await sql('INSERT INTO audit (tenant, at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5, $6)', [e.tenant, at, e.actor, e.action, e.subject, e.detail]);
}
