import { DuckDBInstance } from '@duckdb/node-api';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { entry } from '../helpers/entries.js';
import { tmpDir } from '../helpers/tmp.js';

/** A DuckDB file whose events table has the columns of an older release, with one row. */
async function oldFile(extraColumns: string, row: string): Promise<string> {
  const file = path.join(tmpDir(), 'store.duckdb');
  const old = await DuckDBInstance.create(file);
  const c = await old.connect();
  await c.run(`CREATE TABLE events (tenant VARCHAR NOT NULL, type VARCHAR NOT NULL, key VARCHAR NOT NULL, idempotency_key VARCHAR NOT NULL,
    ts TIMESTAMP_MS NOT NULL, received_at TIMESTAMP_MS NOT NULL, partition INTEGER NOT NULL, "offset" BIGINT NOT NULL, origin VARCHAR NOT NULL,
    properties JSON NOT NULL, context JSON NOT NULL, stored_at TIMESTAMP_MS NOT NULL${extraColumns})`);
  await c.run(`INSERT INTO events VALUES (${row})`);
  c.closeSync();
  old.closeSync();
  return file;
}

describe('a store made before transform pipelines', () => {
  it('store.an-old-duckdb-file-gains-pipeline-version-and-keeps-its-rows', async () => {
    // The events table as it was before pipeline versions, with one row in it.
    const file = await oldFile('', `'acme', 'checkout', 'u', 'old-1', now(), now(), 0, 1, 'live', '{"amount":1}', '{}', now()`);

    const store = new DuckdbStore({ file });
    await store.connect();
    try {
      expect((await store.findEvent('acme', 'old-1'))?.pipelineVersion).toBe(0);
      await store.commit({ records: [{ ...entry('acme', 2, 1), idempotencyKey: 'new-2', offset: 2, attempt: 1, pipelineVersion: 4 }], partitions: [{ partition: 0, token: 1, upTo: 2 }] });
      expect((await store.findEvent('acme', 'new-2'))?.pipelineVersion).toBe(4);
      expect(await store.rawStats('acme')).toEqual({ events: 2, distinctKeys: 2 });
    } finally {
      await store.close();
    }
  });

  it('store.a-duckdb-file-with-pipeline-version-gains-operator-version-and-keeps-its-rows', async () => {
    // The events table as it was before operator versions (pipeline_version added last), with one row in it.
    const file = await oldFile(', pipeline_version INTEGER DEFAULT 0', `'acme', 'checkout', 'u', 'old-1', now(), now(), 0, 1, 'live', '{"amount":1}', '{}', now(), 3`);

    const store = new DuckdbStore({ file });
    await store.connect();
    try {
      expect(await store.findEvent('acme', 'old-1')).toMatchObject({ pipelineVersion: 3, operatorVersion: 0 });
      await store.commit({ records: [{ ...entry('acme', 2, 1), idempotencyKey: 'new-2', offset: 2, attempt: 1, pipelineVersion: 4, operatorVersion: 2 }], partitions: [{ partition: 0, token: 1, upTo: 2 }] });
      expect(await store.findEvent('acme', 'new-2')).toMatchObject({ pipelineVersion: 4, operatorVersion: 2 });
      expect((await store.producedBy('acme', 2, 'operator')).map((x) => x.offset)).toEqual([2]);
      expect(await store.rawStats('acme')).toEqual({ events: 2, distinctKeys: 2 });
    } finally {
      await store.close();
    }
  });
});
