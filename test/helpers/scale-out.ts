import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { connect } from 'nats';
import pg from 'pg';
import { afterEach, expect } from 'vitest';
import { namesOf } from '../../src/backends/nats/stream.js';
import { membersKey, partitionKey } from '../../src/backends/nats/partition-state.js';
import { WORKER_GROUP } from '../../src/worker/workers.js';
import { until } from './pipeline.js';
import { CLI, freePort, startServer, type ServerProcess } from './server.js';
import { NATS_URL, POSTGRES_URL, uniqueName, dropSchema } from './services.js';
import { tmpDir } from './tmp.js';

/**
 * A scale-out deployment for tests: role processes on NATS JetStream and PostgreSQL, with a
 * stream and a schema of their own (deleted by `cleanup`: nothing leaks). The store and the
 * catalog share the schema; each process gets a data directory of its own, as on separate
 * machines: nothing is shared but NATS and PostgreSQL.
 */
export interface Deployment {
  dataDir: string;
  stream: string;
  schema: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  tenant: { writeKey: string; readKey: string; adminKey: string };
  start(role: 'ingest' | 'worker' | 'query', env?: NodeJS.ProcessEnv): Promise<ServerProcess>;
  /** Stored rows and distinct idempotency keys, read from PostgreSQL directly. */
  stored(): Promise<{ rows: number; keys: number }>;
  /** The last lines each started process wrote to stderr (for a failure's message). */
  logs(): string;
  /**
   * For a failure's message: each partition's lease and committed offset as the log holds them
   * (NATS KV), the store's applied offsets, and PostgreSQL sessions of this schema waiting on a
   * lock (a stalled commit shows there, where it logs nothing).
   */
  diagnose(): Promise<string>;
  cleanup(): Promise<void>;
}

const run = promisify(execFile);

export async function deploy(options: { partitions?: number; natsUrl?: string; postgresUrl?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Deployment> {
  const dataDir = tmpDir('sluice-scale-');
  const stream = uniqueName('sluice_e2e');
  const schema = uniqueName('sluice_e2e');
  const natsUrl = options.natsUrl ?? NATS_URL;
  const postgres = `${options.postgresUrl ?? POSTGRES_URL}?schema=${schema}`;
  const args = ['--log', natsUrl, '--store', postgres, '--catalog', postgres, '--partitions', String(options.partitions ?? 16)];
  const env = { SLUICE_LOG_STREAM: stream, SLUICE_LOG_LEVEL: 'warn', ...options.env };
  const { stdout } = await run(process.execPath, [CLI, 'tenant', 'create', 'acme', '--catalog', postgres, '--data-dir', dataDir, '--json'], {
    env: { ...process.env, ...env },
  });
  const keys = JSON.parse(stdout) as { write_key: string; read_key: string; admin_key: string };
  const tenant = { writeKey: keys.write_key, readKey: keys.read_key, adminKey: keys.admin_key };
  const started: ServerProcess[] = [];
  return {
    dataDir,
    stream,
    schema,
    args,
    env,
    tenant,
    async start(role, extra = {}) {
      const p = await startServer(tmpDir('sluice-role-'), await freePort(), args, { ...env, ...extra }, role);
      started.push(p);
      return p;
    },
    async stored() {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        const r = await client.query<{ rows: string; keys: string }>(`SELECT count(*) AS rows, count(DISTINCT (tenant, idempotency_key)) AS keys FROM ${schema}.events`);
        return { rows: Number(r.rows[0]!.rows), keys: Number(r.rows[0]!.keys) };
      } catch (e: unknown) {
        // Before the first worker migrated the schema there is nothing stored.
        if ((e as { code?: string }).code === '42P01') return { rows: 0, keys: 0 };
        throw e;
      } finally {
        await client.end();
      }
    },
    async diagnose() {
      const out: string[] = [];
      try {
        const nc = await connect({ servers: natsUrl });
        try {
          const kv = await nc.jetstream().views.kv(namesOf(stream).stateBucket);
          // Each key asked for by name (a listing of the bucket once left the partitions out).
          const keys = [membersKey(WORKER_GROUP), ...Array.from({ length: options.partitions ?? 16 }, (_, p) => partitionKey(WORKER_GROUP, p))];
          for (const key of keys) {
            const e = await kv.get(key);
            out.push(`log state ${key}: ${e ? `${e.operation} rev ${e.revision} ${e.string()}` : 'none'}`);
          }
        } finally {
          await nc.close();
        }
      } catch (e: unknown) {
        out.push(`log state: ${String(e)}`);
      }
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      try {
        await client.connect();
        const applied = await client.query(`SELECT p, o, token FROM ${schema}.applied ORDER BY p`).catch((e: unknown) => ({ rows: [String(e)] }));
        out.push(`store applied: ${JSON.stringify(applied.rows)}`);
        const waiting = await client.query(
          `SELECT pid, state, wait_event_type, wait_event, now() - xact_start AS in_xact, left(query, 160) AS query FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() AND (wait_event_type = 'Lock' OR state LIKE 'idle in transaction%')`,
        );
        out.push(`postgres sessions waiting on a lock or idle in a transaction: ${JSON.stringify(waiting.rows)}`);
      } catch (e: unknown) {
        out.push(`postgres: ${String(e)}`);
      } finally {
        await client.end().catch(() => undefined);
      }
      return out.join('\n');
    },
    logs() {
      return started.map((p, i) => `process ${i} (pid ${p.child.pid}, exit ${p.child.exitCode ?? p.child.signalCode ?? 'running'}):\n${p.stderr.split('\n').slice(-15).join('\n')}`).join('\n');
    },
    async cleanup() {
      for (const p of started) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
      await Promise.all(started.map((p) => p.exited));
      // A test's own cluster goes away with its files; the shared server is cleaned.
      if (natsUrl === NATS_URL) {
        const nc = await connect({ servers: NATS_URL });
        const jsm = await nc.jetstreamManager();
        for (const name of namesOf(stream).streams) await jsm.streams.delete(name).catch(() => undefined);
        await nc.close();
      }
      await dropSchema(schema);
    },
  };
}

/**
 * For a test file: `deployed` deploys, and every deployment (and whatever the test adds to
 * `cleanups`: an outage, a cluster) is removed after each test, newest first.
 */
export function deployments(): { deployed: (options?: Parameters<typeof deploy>[0]) => Promise<Deployment>; cleanups: (() => Promise<void>)[] } {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  }, 60_000);
  return {
    cleanups,
    async deployed(options = {}) {
      const d = await deploy(options);
      cleanups.push(() => d.cleanup());
      return d;
    },
  };
}

/**
 * Sends `total` events through the ingest processes (round robin, `concurrency` requests in
 * flight, retrying a failed request with the same keys until it is answered 2xx). One event
 * in ten repeats the idempotency key of an earlier one: a producer's retry. Returns the
 * distinct keys acknowledged and the duplicates the log reported.
 */
export async function sendAll(
  ingest: () => string[],
  writeKey: string,
  total: number,
  options: { batch?: number; concurrency?: number; onProgress?: (sent: number) => void; eventsPerSecond?: number } = {},
): Promise<{ keys: number; duplicates: number; accepted: number; retries: number }> {
  const batch = options.batch ?? 500;
  const concurrency = options.concurrency ?? 4;
  const runId = uniqueName('run');
  let next = 0;
  let keys = 0;
  let accepted = 0;
  let duplicates = 0;
  let retries = 0;
  let turn = 0;
  const began = Date.now();
  const worker = async (): Promise<void> => {
    for (;;) {
      const start = next;
      if (start >= total) return;
      // Paced: events flow for total / rate seconds.
      if (options.eventsPerSecond) {
        const due = began + (start / options.eventsPerSecond) * 1000;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
        if (next !== start) continue;
      }
      next = Math.min(total, start + batch);
      const events = [];
      for (let i = start; i < next; i++) {
        // Every tenth event repeats the key of the event 5 before it (sent in an earlier or the same batch).
        const n = i % 10 === 9 && i >= 5 ? i - 5 : i;
        if (n === i) keys++;
        events.push({ type: 'checkout', key: `user-${n % 1000}`, idempotency_key: `${runId}-${n}`, properties: { amount: n % 100 } });
      }
      const body = JSON.stringify(events);
      for (let attempt = 0; ; attempt++) {
        const urls = ingest();
        const url = urls[turn++ % urls.length]!;
        let answer: { accepted: number; duplicates: number } | null = null;
        let refused: string | null = null;
        try {
          const r = await fetch(`${url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${writeKey}`, 'content-type': 'application/json' }, body });
          if (r.ok) answer = (await r.json()) as { accepted: number; duplicates: number };
          else if (r.status >= 400 && r.status < 500 && r.status !== 429) refused = `${r.status}: ${await r.text()}`;
          else await r.body?.cancel();
        } catch {
          // Connection refused or reset (a process restarting): try again.
        }
        // A refusal of the request itself is a bug in the test or the server: fail loudly.
        if (refused !== null) throw new Error(`ingest answered ${refused}`);
        if (answer) {
          accepted += answer.accepted;
          duplicates += answer.duplicates;
          break;
        }
        retries++;
        await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * 2 ** attempt)));
      }
      options.onProgress?.(next);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { keys, duplicates, accepted, retries };
}

/**
 * Waits until `d` has stored at least `rows` rows. These tests assert what is stored, not how
 * fast: beside the kill-9 suite on the same two cores, NATS server and PostgreSQL a drain may
 * crawl for minutes. So it fails when nothing more is stored for `stallMs`, or after
 * `timeoutMs` in all, saying how far it got, with the processes' last lines and the log's and
 * store's state (Deployment.diagnose).
 */
export async function drained(d: Deployment, rows: number, what: string, opts: { stallMs?: number; timeoutMs?: number } = {}): Promise<void> {
  const { stallMs = 120_000, timeoutMs = 480_000 } = opts;
  const start = Date.now();
  let last = { rows: -1, at: start };
  for (;;) {
    const seen = await d.stored();
    if (seen.rows >= rows) return;
    if (seen.rows > last.rows) last = { rows: seen.rows, at: Date.now() };
    const stalled = Date.now() - last.at > stallMs;
    if (stalled || Date.now() - start > timeoutMs) {
      const why = stalled ? `nothing more stored for ${stallMs / 1000} s` : `not all stored after ${timeoutMs / 1000} s`;
      throw new Error(`${what}: ${why} (${seen.rows} rows, ${seen.keys} keys of ${rows})\n${d.logs()}\n${await d.diagnose()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Waits until every acknowledged key is stored, then checks nothing more arrives; prints the
 * figures. Fails after `timeoutMs`, or sooner when nothing more is stored for `stallMs`.
 */
export async function settle(
  d: Deployment,
  name: string,
  sent: { keys: number; accepted: number; duplicates: number; retries: number },
  timeoutMs = 120_000,
  stallMs = Infinity,
): Promise<void> {
  const start = Date.now();
  let said = start;
  let last = { rows: -1, at: start };
  for (let seen = await d.stored(); seen.rows < sent.keys; seen = await d.stored()) {
    // Say how far it got, as it goes and at the end: a slow drain and a stall read differently.
    if (Date.now() - said >= 15_000) {
      said = Date.now();
      console.log(`${name}: ${seen.rows} of ${sent.keys} stored after ${((said - start) / 1000).toFixed(0)} s`);
    }
    if (seen.rows > last.rows) last = { rows: seen.rows, at: Date.now() };
    else if (Date.now() - last.at > stallMs) throw new Error(`${name}: nothing more stored for ${stallMs / 1000} s (${seen.rows} of ${sent.keys} acknowledged)\n${d.logs()}\n${await d.diagnose()}`);
    if (Date.now() - start > timeoutMs) throw new Error(`${name}: ${seen.rows} rows (${seen.keys} keys) of ${sent.keys} acknowledged stored after ${timeoutMs} ms\n${d.logs()}\n${await d.diagnose()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  await new Promise((r) => setTimeout(r, 1_000));
  const stored = await d.stored();
  const lost = sent.keys - stored.keys;
  console.log(`${name}: acknowledged ${sent.keys} distinct keys (+${sent.duplicates} duplicates, ${sent.retries} retried requests), stored ${stored.rows}, doubled ${stored.rows - stored.keys}, lost ${lost}`);
  expect(stored).toEqual({ rows: sent.keys, keys: sent.keys });
}
