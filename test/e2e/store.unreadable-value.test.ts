import { DuckDBInstance, DuckDBTimestampMillisecondsValue } from '@duckdb/node-api';
import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { embeddedPaths, openEmbeddedStore } from '../../src/backends/embedded.js';
import { storeDataError } from '../../src/core/errors.js';
import { parseQuery } from '../../src/core/query.js';
import { toSluiceError } from '../../src/http/errors.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';
import { POSTGRES_URL, postgresAvailable } from '../helpers/services.js';

/**
 * A stored value the store cannot read (written before ingest refused lone surrogates, or
 * behind sluice's back) fails the queries that read it as a data error: not 503, not
 * retryable, no payload in the message; other queries go on.
 */

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

it('store.an-unreadable-value-fails-its-query-as-a-data-error-and-others-answer', async () => {
  p = await startPipeline();
  const ts = new Date(Date.now() - 60_000).toISOString();
  const r = await p.app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { authorization: `Bearer ${p.tenant.writeKey}` },
    payload: [
      { type: 'named', ts, idempotency_key: 'bad', properties: { name: 'secret-payload' } },
      { type: 'other', ts, idempotency_key: 'good', properties: { name: 'fine' } },
    ],
  });
  expect(r.json()).toMatchObject({ accepted: 2 });
  await until(async () => (await p!.store.rawStats('acme')).events === 2);
  // Behind sluice's back: the escaped lone surrogate that the old ingest let through.
  await p.workers?.stop();
  p.workers = null;
  await p.store.close();
  const db = await DuckDBInstance.create(embeddedPaths(p.config.dataDir).duckdb);
  const c = await db.connect();
  // The store appends JSON text with DuckDB's appender, which does not validate it (an
  // UPDATE would): the row is written again the way the old ingest let it through.
  const row = (await c.runAndReadAll(`SELECT tenant, type, key, idempotency_key, epoch_ms(ts), epoch_ms(received_at), partition, "offset", origin, context FROM events WHERE idempotency_key = 'bad'`)).getRows()[0]!;
  await c.run(`DELETE FROM events WHERE idempotency_key = 'bad'`);
  const appender = await c.createAppender('events');
  appender.appendVarchar(String(row[0]));
  appender.appendVarchar(String(row[1]));
  appender.appendVarchar(String(row[2]));
  appender.appendVarchar(String(row[3]));
  appender.appendTimestampMilliseconds(new DuckDBTimestampMillisecondsValue(BigInt(row[4] as bigint)));
  appender.appendTimestampMilliseconds(new DuckDBTimestampMillisecondsValue(BigInt(row[5] as bigint)));
  appender.appendInteger(Number(row[6]));
  appender.appendBigInt(BigInt(row[7] as bigint));
  appender.appendVarchar(String(row[8]));
  appender.appendVarchar('{"name":"secret-payload\\ud800"}');
  appender.appendVarchar(String(row[9]));
  appender.appendTimestampMilliseconds(new DuckDBTimestampMillisecondsValue(BigInt(Date.now())));
  appender.appendInteger(0); // pipeline_version: no transform pipeline
  appender.appendInteger(0); // operator_version: no operator pipeline
  appender.endRow();
  appender.closeSync();
  c.closeSync();
  db.closeSync();
  p.store = openEmbeddedStore(p.config);
  await p.store.connect();

  const q = (event: string) => parseQuery({ event, from: '-1h', to: 'now', interval: null, group_by: ['properties.name'], measures: ['count'] }, 'acme', Date.now(), { maxBuckets: 1000, maxRows: 1000 });
  const failure = await p.store.query(q('named'), 1000).then(
    () => null,
    (e: unknown) => e,
  );
  expect(failure).not.toBeNull();
  const answer = toSluiceError(failure, 1 << 20);
  expect(answer.code).toBe('SLUICE_ERR_DATA_DAMAGED');
  expect(answer.status).toBe(500);
  expect(answer.retryAfter).toBeUndefined();
  expect(answer.message).not.toContain('secret-payload');
  // Other queries answer.
  expect((await p.store.query(q('other'), 1000)).rows).toEqual([['fine', 1]]);
});

it('store.postgresql-data-exceptions-are-data-errors-too', async () => {
  if (!(await postgresAvailable())) return;
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    const e = await client.query('SELECT CAST($1::text AS integer)', ['secret-payload']).then(
      () => null,
      (err: unknown) => err,
    );
    expect((e as { code: string }).code).toBe('22P02');
    const answer = storeDataError(e)!;
    expect(answer.code).toBe('SLUICE_ERR_DATA_DAMAGED');
    expect(answer.retryAfter).toBeUndefined();
    expect(answer.message).toContain('SQLSTATE 22P02');
    expect(answer.message).not.toContain('secret-payload');
    // A connection failure is not a data error.
    expect(storeDataError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }))).toBeNull();
  } finally {
    await client.end();
  }
});
