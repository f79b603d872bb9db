import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PostgresCatalog } from '../../src/backends/postgres/catalog.js';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import { ManualClock } from '../../src/core/clock.js';
import type { Catalog } from '../../src/ports/catalog.js';
import { PipelineRegistry } from '../../src/transform/registry.js';
import { putPipeline } from '../../src/transform/versions.js';
import { POSTGRES_URL, postgresAvailable, uniqueName, dropSchema } from '../helpers/services.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * Each worker process has its own PipelineRegistry over its own catalog connection. A version
 * written through another connection (the HTTP process) is seen by every one of them once
 * `events.schemaRefreshMs` has passed on their clock, and not served stale past that.
 */
const withPostgres = await postgresAvailable();

async function versionReachesEveryProcess(writer: Catalog, workers: Catalog[]): Promise<void> {
  const REFRESH = 1_000;
  const clock = new ManualClock();
  const registries = workers.map((c) => new PipelineRegistry(c, { refreshMs: REFRESH, now: () => clock.now() }));
  await writer.createTenant('acme').catch(() => undefined);
  for (const r of registries) expect((await r.forTenant('acme')).version).toBe(0);

  await putPipeline(writer.pipelines, 'acme', { steps: [{ set: { field: 'properties.v', value: '1' } }], actor: 'test' });
  // Within the refresh interval a worker may still run what it had…
  await clock.advance(REFRESH - 1);
  for (const r of registries) expect((await r.forTenant('acme')).version).toBe(0);
  // …and once it has passed, every worker runs the new version.
  await clock.advance(1);
  for (const r of registries) {
    const p = await r.forTenant('acme');
    expect(p.version).toBe(1);
    const out = p.transform!.run({ type: 'x', key: 'k', ts: 0, properties: {}, context: {} }, p.salt);
    expect(out.output!.properties).toEqual({ v: 1 });
  }
  const salts = await Promise.all(registries.map(async (r) => (await r.forTenant('acme')).salt));
  expect(new Set(salts).size).toBe(1);
}

describe('a pipeline version reaches every worker process', () => {
  it('transform.version-reaches-every-worker-within-the-refresh-interval-embedded', async () => {
    const file = path.join(tmpDir(), 'sluice.db');
    const catalogs = [new SqliteCatalog(file), new SqliteCatalog(file), new SqliteCatalog(file)];
    try {
      await versionReachesEveryProcess(catalogs[0]!, catalogs.slice(1));
    } finally {
      for (const c of catalogs) await c.close();
    }
  });

  const schema = uniqueName('sluice_test');
  const opened: PostgresCatalog[] = [];
  afterAll(async () => {
    await Promise.all(opened.map((c) => c.close()));
    if (opened.length === 0) return;
    await dropSchema(schema);
  });
  it.runIf(withPostgres)('transform.version-reaches-every-worker-within-the-refresh-interval-scale-out', async () => {
    for (let i = 0; i < 3; i++) {
      const c = new PostgresCatalog(`${POSTGRES_URL}?schema=${schema}`);
      await c.connect();
      opened.push(c);
    }
    await versionReachesEveryProcess(opened[0]!, opened.slice(1));
  });
});
