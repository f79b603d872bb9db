import { afterAll, expect, it } from 'vitest';
import { entry } from '../helpers/entries.js';
import pg from 'pg';
import { PostgresStore } from '../../src/backends/postgres/store.js';
import { POSTGRES_URL, postgresAvailable, uniqueName } from '../helpers/services.js';
import { storeConformance } from './store-suite.js';

const schemas: string[] = [];

if (await postgresAvailable()) {
  storeConformance('postgres', async () => {
    const schema = uniqueName('sluice_test');
    schemas.push(schema);
    const url = `${POSTGRES_URL}?schema=${schema}`;
    let store = new PostgresStore({ url });
    await store.connect();
    return {
      get store() {
        return store;
      },
      reopen: async () => {
        await store.close();
        store = new PostgresStore({ url });
        await store.connect();
        return store;
      },
    };
  });

  // Beyond the suite: the key ledger, which makes a producer's retry past the log's dedupe
  // window (short on NATS: the server keeps its ids in memory) count once.
  it('commit.skips-a-key-already-stored-at-another-position-and-counts-it-as-ended', async () => {
    const schema = uniqueName('sluice_test');
    schemas.push(schema);
    const store = new PostgresStore({ url: `${POSTGRES_URL}?schema=${schema}` });
    await store.connect();
    const first = { ...entry('t1', 1, 1), partition: 0, offset: 1, attempt: 1 };
    const retried = { ...first, offset: 900 };
    expect((await store.commit({ records: [first], partitions: [{ partition: 0, token: 1, upTo: 1 }] })).stored).toBe(1);
    expect(await store.commit({ records: [retried], partitions: [{ partition: 0, token: 1, upTo: 900 }] })).toEqual({ stored: 0, skipped: 1, storedByTenant: new Map() });
    expect(await store.rawStats('t1')).toEqual({ events: 1, distinctKeys: 1 });
    const minute = first.receivedAt - (first.receivedAt % 60_000);
    expect(await store.storedByMinute(minute, minute + 60_000)).toEqual([{ tenant: 't1', minute, n: 2 }]);
    await store.close();
  });

  // Nothing leaked: every schema a test made is dropped.
  afterAll(async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
    await client.end();
  });
}
