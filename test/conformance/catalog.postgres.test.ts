import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { PostgresCatalog } from '../../src/backends/postgres/catalog.js';
import { PostgresStore } from '../../src/backends/postgres/store.js';
import { POSTGRES_URL, postgresAvailable, uniqueName } from '../helpers/services.js';
import { catalogConformance } from './catalog-suite.js';

const schemas: string[] = [];
const opened: PostgresCatalog[] = [];

async function open(url: string): Promise<PostgresCatalog> {
  const c = new PostgresCatalog(url);
  await c.connect();
  opened.push(c);
  return c;
}

if (await postgresAvailable()) {
  catalogConformance('postgres', async () => {
    const schema = uniqueName('sluice_test');
    schemas.push(schema);
    const url = `${POSTGRES_URL}?schema=${schema}`;
    return { catalog: await open(url), another: () => open(url) };
  });

  // Nothing leaked: every pool is closed and every schema a test made is dropped.
  afterAll(async () => {
    await Promise.all(opened.map((c) => c.close()));
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
    await client.end();
  });
}

// A first hour's two usual mistakes name the fix, not only PostgreSQL's own words.
describe.runIf(await postgresAvailable())('postgres connection errors', () => {
  const u = new URL(POSTGRES_URL);
  it('a database that does not exist: the createdb command for this URL', async () => {
    const missing = `${u.protocol}//${u.username}@${u.host}/${uniqueName('sluice_nodb')}`;
    const db = new URL(missing).pathname.slice(1);
    const c = new PostgresCatalog(missing);
    await expect(c.connect()).rejects.toThrow(`create the database first (createdb -h ${u.hostname} -p ${u.port || '5432'} -U ${u.username} ${db})`);
    await c.close();
    const s = new PostgresStore({ url: missing });
    await expect(s.connect()).rejects.toThrow(`createdb -h ${u.hostname} -p ${u.port || '5432'} -U ${u.username} ${db}`);
  });
  it('a role that does not exist: check the user and password', async () => {
    const c = new PostgresCatalog(`${u.protocol}//${uniqueName('nobody')}@${u.host}${u.pathname}`);
    await expect(c.connect()).rejects.toThrow("check the URL's user and password");
    await c.close();
  });
});
