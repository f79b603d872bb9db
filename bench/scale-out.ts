import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { connect, headers } from 'nats';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { PipelinedPublisher } from '../src/backends/nats/publisher.js';
import { namesOf } from '../src/backends/nats/stream.js';
import { batchBodies, eventsFor, post, queriedTotal, type KeyShape, type LoadResult } from './load.js';
import { CLI, freePort, keysFrom, spawnServer, startSluice, type Child } from './proc.js';

/**
 * Scale-out on NATS JetStream + PostgreSQL, beside the embedded default and the raw engine
 * ceilings, all measured in the same run on the same machine:
 *   - JetStream publish: `js.publish()` (a round trip per message) vs pipelined publishing
 *     (what sluice ingest does), same messages, same server;
 *   - PostgreSQL: COPY of the same rows into a bare table (the store's ceiling);
 *   - sluice: `sluice ingest` + 2 `sluice worker` on NATS and PostgreSQL, ingest events/s and
 *     sent → stored events/s; and `sluice up` on the embedded default with the same batches.
 * Needs NATS (SLUICE_TEST_NATS, default 127.0.0.1:4222) and PostgreSQL (SLUICE_TEST_POSTGRES).
 */
const NATS_URL = process.env.SLUICE_TEST_NATS ?? 'nats://127.0.0.1:4222';
const POSTGRES_URL = process.env.SLUICE_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const run = promisify(execFile);

export interface ScaleOutResult {
  events: number;
  jsPublish: number;
  pipelined: number;
  copy: number;
  natsPg: { ingest: LoadResult; e2e: number };
  /** The same deployment and load with a UUID idempotency key per event. */
  natsPgUuid: { ingest: LoadResult; e2e: number };
  embedded: { ingest: LoadResult; e2e: number };
}

export async function scaleOutBench(work: string, events: number, batch: number, concurrency: number, say: (s: string) => void): Promise<ScaleOutResult> {
  const id = randomBytes(4).toString('hex');
  const stream = `sluice_bench_${id}`;
  const schema = `sluice_bench_${id}`;
  const nc = await connect({ servers: NATS_URL });
  const cleanup: (() => Promise<void>)[] = [];
  const jsm = await nc.jetstreamManager();
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    const messages = eventsFor(`ceiling-${id}`, 0, Math.min(events, 200_000)).map((e) => Buffer.from(e));
    say(`scale-out: JetStream publish ceilings, ${messages.length} messages`);
    const jsPublish = await publishRate(nc, jsm, `${stream}_js`, messages, false);
    const pipelined = await publishRate(nc, jsm, `${stream}_pp`, messages, true);

    say(`scale-out: PostgreSQL COPY ceiling, ${events} rows`);
    const copy = await copyRate(admin, schema, events);

    const bodies = batchBodies(`bench-${id}`, events, batch);
    const perBody = (i: number): number => Math.min(batch, events - i * batch);

    // The whole deployment on the shared engines: the log on NATS, the store and the catalog on
    // PostgreSQL; once with sequential idempotency keys, once with UUIDs (what SDKs send), each
    // on a fresh stream and schema so the second starts as cold as the first.
    const natsPgRun = async (keys: KeyShape): Promise<ScaleOutResult['natsPg']> => {
      say(`scale-out: sluice ingest + 2 workers on NATS and PostgreSQL, ${keys} keys`);
      const runStream = `${stream}_${keys}`;
      const runSchema = `${schema}_${keys}`;
      cleanup.push(async () => {
        for (const name of namesOf(runStream).streams) await jsm.streams.delete(name).catch(() => undefined);
        await admin.query(`DROP SCHEMA IF EXISTS ${runSchema} CASCADE`).catch(() => undefined);
      });
      const dataDir = path.join(work, `scale-out-${keys}`);
      const pgUrl = `${POSTGRES_URL}?schema=${runSchema}`;
      const args = ['--data-dir', dataDir, '--log', NATS_URL, '--store', pgUrl, '--catalog', pgUrl];
      const env = { SLUICE_LOG_STREAM: runStream, SLUICE_LOG_LEVEL: 'warn' };
      const { stdout } = await run(process.execPath, [CLI, 'tenant', 'create', 'bench', '--catalog', pgUrl, '--data-dir', dataDir, '--json'], { env: { ...process.env, ...env } });
      const writeKey = (JSON.parse(stdout) as { write_key: string }).write_key;
      const role = async (name: string, extra: NodeJS.ProcessEnv = {}): Promise<Child> => {
        const port = await freePort();
        return spawnServer(CLI, [name, ...args, '--port', String(port)], port, { ...env, ...extra });
      };
      const children = [await role('worker', { SLUICE_WORKER_ID: 'a' }), await role('worker', { SLUICE_WORKER_ID: 'b' }), await role('ingest')];
      try {
        const runBodies = keys === 'sequential' ? bodies : batchBodies(`bench-${id}`, events, batch, 'uuid');
        const started = performance.now();
        const ingest = await post(children[2]!.url, writeKey, runBodies, perBody, concurrency);
        for (;;) {
          const n = Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${runSchema}.events`)).rows[0]!.n);
          if (n >= events) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        return { ingest, e2e: events / ((performance.now() - started) / 1000) };
      } finally {
        await Promise.all(children.map((c) => c.stop()));
      }
    };
    const natsPg = await natsPgRun('sequential');
    const natsPgUuid = await natsPgRun('uuid');

    say('scale-out: sluice up on the embedded default, same batches');
    const up = await startSluice(path.join(work, 'scale-out-embedded'), await freePort());
    let embedded: ScaleOutResult['embedded'];
    try {
      const { writeKey: w, readKey: r } = keysFrom(up.stdout);
      const started = performance.now();
      const ingest = await post(up.url, w, bodies, perBody, concurrency);
      while ((await queriedTotal(up.url, r)) < events) await new Promise((res) => setTimeout(res, 100));
      embedded = { ingest, e2e: events / ((performance.now() - started) / 1000) };
    } finally {
      await up.stop();
    }
    return { events, jsPublish, pipelined, copy, natsPg, natsPgUuid, embedded };
  } finally {
    for (const name of [`${stream}_js`, `${stream}_pp`]) await jsm.streams.delete(name).catch(() => undefined);
    for (const c of cleanup) await c();
    await nc.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await admin.end();
  }
}

/** Messages per second into a fresh stream: one `js.publish()` each (up to 1,000 awaited at once), or pipelined. */
async function publishRate(nc: Awaited<ReturnType<typeof connect>>, jsm: Awaited<ReturnType<Awaited<ReturnType<typeof connect>>['jetstreamManager']>>, stream: string, messages: Buffer[], pipelined: boolean): Promise<number> {
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
  const started = performance.now();
  if (pipelined) {
    const publisher = new PipelinedPublisher(nc, stream);
    for (let i = 0; i < messages.length; i += 500) {
      await publisher.publishAll(messages.slice(i, i + 500).map((data, j) => ({ subject: `${stream}.p.${(i + j) % 16}`, data, msgId: `${stream}-${i + j}` })), 30_000);
    }
    publisher.close();
  } else {
    const js = nc.jetstream();
    for (let i = 0; i < messages.length; i += 1_000) {
      await Promise.all(
        messages.slice(i, i + 1_000).map((data, j) => {
          const h = headers();
          h.set('Nats-Msg-Id', `${stream}-${i + j}`);
          return js.publish(`${stream}.p.${(i + j) % 16}`, data, { headers: h });
        }),
      );
    }
  }
  return messages.length / ((performance.now() - started) / 1000);
}

/** Rows per second COPYed into a bare table shaped like the store's events. */
async function copyRate(client: pg.Client, schema: string, rows: number): Promise<number> {
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await client.query(`CREATE TABLE ${schema}.copy_ceiling (tenant text, type text, key text, idempotency_key text, ts bigint, received_at bigint, partition int, "offset" bigint, origin text, properties jsonb, context jsonb, stored_at bigint)`);
  const now = Date.now();
  function* lines(): Generator<string> {
    for (let i = 0; i < rows; i++) {
      yield `bench\tcheckout\tuser-${i % 1000}\tk-${i}\t${now + i}\t${now}\t${i % 16}\t${i}\tlive\t{"amount": ${i % 100}, "region": "eu"}\t{}\t${now}\n`;
    }
  }
  const started = performance.now();
  await pipeline(Readable.from(lines()), client.query(copyFrom(`COPY ${schema}.copy_ceiling FROM STDIN`)));
  return rows / ((performance.now() - started) / 1000);
}
