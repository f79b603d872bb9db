import { DuckDBInstance } from '@duckdb/node-api';

/** Reads the store file directly (the server must be stopped): totals and doubles per tenant. */
export async function storeFacts(file: string, tenant: string): Promise<{ events: number; distinctKeys: number; counted: number }> {
  const db = await DuckDBInstance.create(file, { access_mode: 'READ_ONLY' });
  const c = await db.connect();
  try {
    const [[events, distinct]] = (await c.runAndReadAll('SELECT count(*), count(DISTINCT idempotency_key) FROM events WHERE tenant = ?', [tenant])).getRows() as [bigint, bigint][];
    const [[counted]] = (await c.runAndReadAll('SELECT coalesce(sum(n), 0) FROM counts_1m WHERE tenant = ?', [tenant])).getRows() as [bigint][];
    return { events: Number(events), distinctKeys: Number(distinct), counted: Number(counted) };
  } finally {
    c.closeSync();
    db.closeSync();
  }
}
