import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { probeEmbeddedFile } from '../../src/backends/embedded.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-doctor-files-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;
const write = (name: string, bytes: number) => fs.writeFileSync(path.join(dir, name), Buffer.alloc(bytes));

it("doctor.an-embedded-file's-size-counts-its-write-ahead-log-and-the-offsets-file", () => {
  // DuckDB keeps what is not checkpointed in "store.duckdb.wal": a store of 25k events showed 0.0 MiB without it.
  write('store.duckdb', 12 * 1024);
  write('store.duckdb.wal', 4 * MiB);
  expect(probeEmbeddedFile(dir, 'store', 'duckdb', 'embedded DuckDB')).toEqual([
    { level: 'ok', what: 'store', detail: `embedded DuckDB: store.duckdb, store.duckdb.wal in ${dir}, 4.0 MiB` },
  ]);
  write('sluice.db', 2 * MiB);
  write('sluice.db-wal', 1 * MiB);
  write('sluice.db-offsets', 512 * 1024);
  write('sluice.db-offsets-wal', 512 * 1024);
  const [log] = probeEmbeddedFile(dir, 'log', 'sqlite', 'embedded SQLite');
  expect(log!.detail).toBe(`embedded SQLite: sluice.db, sluice.db-wal, sluice.db-offsets, sluice.db-offsets-wal in ${dir}, 4.0 MiB`);
  // The catalog lives in the log's file: said, so that nobody adds the two up.
  expect(probeEmbeddedFile(dir, 'catalog', 'sqlite', 'embedded SQLite')[0]!.detail).toContain(`in ${dir} (the same files as the log), 4.0 MiB`);
});
