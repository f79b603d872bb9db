import pg from 'pg';
import { coerceError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';
import type { Finding } from '../backend.js';
import { nextStep, postgresTarget } from './database.js';

/** `sluice doctor` on a PostgreSQL store or catalog: reachability, version, fsync and synchronous_commit, migration. */
export async function probePostgres(url: string, what: 'store' | 'catalog'): Promise<Finding[]> {
  const target = postgresTarget(url);
  const client = new pg.Client({ connectionString: target.url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
  } catch (e: unknown) {
    return [{ level: 'fail', what, detail: `cannot reach PostgreSQL at ${redactUrl(target.url)}: ${coerceError(e).message}. ${capitalized(nextStep(e, `start it, or fix --${what}`, target.url))}.` }];
  }
  const out: Finding[] = [];
  try {
    const setting = async (name: string): Promise<string> => (await client.query<{ v: string }>('SELECT current_setting($1) AS v', [name])).rows[0]!.v;
    out.push({ level: 'ok', what, detail: `PostgreSQL ${await setting('server_version')} at ${redactUrl(target.url)}, schema ${target.schema}` });
    if ((await setting('fsync')) !== 'on') out.push({ level: 'warn', what: `${what} durability`, detail: 'fsync is off: a crash of the server can lose committed events. Set fsync = on.' });
    const sync = await setting('synchronous_commit');
    if (sync === 'off') {
      out.push({ level: 'warn', what: `${what} durability`, detail: 'synchronous_commit is off: the last commits before a crash can be lost (workers then ack records that are not stored). Set it to on.' });
    }
    const migrated = await client
      .query<{ v: number }>(`SELECT max(version) AS v FROM ${target.schema}.sluice_migrations WHERE component = $1`, [what])
      .then((r) => r.rows[0]?.v ?? null, () => null);
    out.push(
      migrated === null
        ? { level: 'ok', what: `${what} schema`, detail: `${target.schema} is not created yet: the first sluice process migrates it` }
        : { level: 'ok', what: `${what} schema`, detail: `${target.schema} at migration ${migrated}` },
    );
  } finally {
    await client.end().catch(() => undefined);
  }
  return out;
}

function capitalized(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
