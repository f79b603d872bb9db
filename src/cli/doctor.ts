import { connect } from 'nats';
import pg from 'pg';
import { kindOf } from '../backends/kinds.js';
import { natsServers } from '../backends/registry.js';
import { partitionsOf } from '../backends/nats/stream.js';
import { postgresTarget } from '../backends/postgres/database.js';
import type { Config } from '../config/schema.js';
import { coerceError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';

/** One finding of `sluice doctor`. */
export interface Finding {
  level: 'ok' | 'warn' | 'fail';
  what: string;
  detail: string;
}

/**
 * `sluice doctor`: checks the backends a configuration names, and how they are set up for
 * durability, and says what to change. Exit status 1 when something fails, 0 otherwise
 * (warnings included).
 */
export async function doctor(config: Readonly<Config>): Promise<Finding[]> {
  const out: Finding[] = [];
  if (kindOf(config.log.url, 'log') === 'nats') out.push(...(await checkNats(config)));
  else out.push({ level: 'ok', what: 'log', detail: `embedded SQLite in ${config.dataDir} (fsync: ${config.log.fsync})` });
  if (kindOf(config.store.url, 'store') === 'postgres') out.push(...(await checkPostgres(config.store.url, 'store')));
  else out.push({ level: 'ok', what: 'store', detail: `embedded DuckDB in ${config.dataDir}` });
  if (kindOf(config.catalog.url, 'catalog') === 'postgres') out.push(...(await checkPostgres(config.catalog.url, 'catalog')));
  else out.push({ level: 'ok', what: 'catalog', detail: `embedded SQLite in ${config.dataDir} (role processes of one machine share it; on several machines use --catalog postgres://…)` });
  return out;
}

async function checkNats(config: Readonly<Config>): Promise<Finding[]> {
  const out: Finding[] = [];
  const servers = natsServers(config.log.url);
  let nc;
  try {
    nc = await connect({ servers, timeout: 5_000, maxReconnectAttempts: 0 });
  } catch (e: unknown) {
    return [{ level: 'fail', what: 'log', detail: `cannot reach NATS at ${servers.join(', ')}: ${coerceError(e).message}. Start it, or fix --log.` }];
  }
  try {
    const version = nc.info?.version ?? 'unknown';
    out.push({ level: 'ok', what: 'log', detail: `NATS ${version} at ${redactUrl(config.log.url)}` });
    const [major, minor] = version.split('.').map(Number);
    if (major === 2 && (minor ?? 0) < 10) {
      out.push({
        level: 'warn',
        what: 'log durability',
        detail: `NATS ${version} cannot fsync every write (sync_interval arrived in 2.10): it acknowledges before the data is on disk and syncs every 2 minutes, so a power failure of the servers holding a stream can lose acknowledged events. Upgrade to 2.10 or later and set jetstream { sync_interval: always }, with 3 replicas.`,
      });
    } else {
      out.push({
        level: 'warn',
        what: 'log durability',
        detail: 'sluice cannot read the servers\' sync_interval from a client: check that every server has jetstream { sync_interval: always } (the default fsyncs every 2 minutes while acknowledging at once)',
      });
    }
    const jsm = await nc.jetstreamManager();
    try {
      const info = await jsm.streams.info(config.log.stream);
      const replicas = info.config.num_replicas;
      out.push(
        replicas >= 3
          ? { level: 'ok', what: 'stream', detail: `${config.log.stream}: ${replicas} replicas, ${info.state.messages} records` }
          : { level: 'warn', what: 'stream', detail: `${config.log.stream} has ${replicas} replica(s): one server lost loses its records. Production runs 3 (log.replicas: 3 on a 3-node cluster).` },
      );
      const partitions = partitionsOf(info.config.description);
      if (partitions !== null && partitions !== config.partitions) {
        out.push({ level: 'fail', what: 'stream', detail: `${config.log.stream} was created with ${partitions} partitions; the configuration says ${config.partitions}` });
      }
    } catch {
      out.push({ level: 'ok', what: 'stream', detail: `${config.log.stream} does not exist yet: the first sluice process creates it` });
    }
  } finally {
    await nc.close().catch(() => undefined);
  }
  return out;
}

async function checkPostgres(url: string, what: string): Promise<Finding[]> {
  const target = postgresTarget(url);
  const client = new pg.Client({ connectionString: target.url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
  } catch (e: unknown) {
    return [{ level: 'fail', what, detail: `cannot reach PostgreSQL at ${redactUrl(target.url)}: ${coerceError(e).message}. Start it, or fix --${what}.` }];
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

export function formatFindings(findings: Finding[]): string {
  const mark = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };
  return findings.map((f) => `${mark[f.level]}  ${f.what}: ${f.detail}`).join('\n');
}
