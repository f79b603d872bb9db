import { afterAll } from 'vitest';
import pg from 'pg';
import { PostgresCatalog } from '../../src/backends/postgres/catalog.js';
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
