import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import fs from 'node:fs';
import path from 'node:path';
import { percentile } from './load.js';

/**
 * What a DuckDB checkpoint costs the small commits going on beside it, by the shape of those
 * commits (the remaining cost in docs/operations.md, "What is left of one tenant's cost on
 * another"). A writer commits 20 rows every 10 ms, as a steady neighbour's commits do; a second
 * connection meanwhile writes about WAL_MIB of rows into another table in transactions smaller
 * than a row group (so they go to the write-ahead log, as a build's chunks do) and checkpoints.
 * Two shapes of the small commit, in one run:
 *   append only  rows appended to a table without a key;
 *   keyed        the same, and one row of a keyed table updated in the same transaction (as
 *                sluice's commits do: the applied offsets, the per-minute counts).
 * DuckDB lets a commit that only appends to tables without indexes go on while a checkpoint
 * runs (duckdb/duckdb#20052, in 1.5); anything else takes the checkpoint lock, so a checkpoint
 * waits for such a transaction (FORCE CHECKPOINT, used for that shape: a plain CHECKPOINT
 * refuses while one is open) and such commits wait for it.
 * Reported per shape: the checkpoint's length, and the small commits' p50, p99 and slowest
 * among those that overlapped it. Measured here (DuckDB 1.5, 2 cores): both shapes wait for the
 * whole checkpoint, 1.1-3.0 s for 256 MiB of log, in 3 runs of each; in 1 of 4 rounds of an
 * earlier probe, append-only commits went on during one.
 */

const WAL_MIB = 256;

export interface CheckpointShape {
  checkpointMs: number;
  overlapping: number;
  p50: number;
  p99: number;
  max: number;
}
export interface CheckpointBench {
  walMib: number;
  appendOnly: CheckpointShape;
  keyed: CheckpointShape;
}

async function shape(dir: string, keyed: boolean): Promise<CheckpointShape> {
  const file = path.join(dir, `checkpoint-${keyed ? 'keyed' : 'append'}.duckdb`);
  for (const f of [file, `${file}.wal`]) fs.rmSync(f, { force: true });
  const instance = await DuckDBInstance.create(file, { checkpoint_threshold: '16GiB', threads: '2' });
  const writer = await instance.connect();
  const side = await instance.connect();
  await writer.run('CREATE TABLE events (tenant VARCHAR, k VARCHAR, ts BIGINT, properties VARCHAR)');
  await writer.run('CREATE TABLE applied (p INTEGER PRIMARY KEY, o BIGINT)');
  await writer.run('INSERT INTO applied VALUES (0, 0)');
  await side.run('CREATE TABLE build (x BIGINT, s VARCHAR)');
  const commits: { ms: number; start: number; end: number }[] = [];
  let stop = false;
  const steady = (async (c: DuckDBConnection) => {
    for (let i = 0; !stop; i++) {
      const start = performance.now();
      await c.run('BEGIN TRANSACTION');
      await c.run(`INSERT INTO events SELECT 'beta', 'k' || range, ${i}, repeat('x', 100) FROM range(20)`);
      if (keyed) await c.run(`UPDATE applied SET o = ${i} WHERE p = 0`);
      await c.run('COMMIT');
      const end = performance.now();
      commits.push({ ms: end - start, start, end });
      await new Promise((r) => setTimeout(r, 10));
    }
  })(writer);
  // About WAL_MIB of rows, 50,000 a transaction (under a row group of 122,880: logged, not written to blocks at commit).
  const rows = Math.round((WAL_MIB * 1_048_576) / 280);
  for (let from = 0; from < rows; from += 50_000) {
    await side.run(`INSERT INTO build SELECT range, md5(range::VARCHAR) || repeat('y', 200) FROM range(${from}, ${Math.min(rows, from + 50_000)})`);
  }
  const t0 = performance.now();
  await side.run(keyed ? 'FORCE CHECKPOINT' : 'CHECKPOINT');
  const t1 = performance.now();
  await new Promise((r) => setTimeout(r, 200));
  stop = true;
  await steady;
  writer.closeSync();
  side.closeSync();
  instance.closeSync();
  const during = commits.filter((c) => c.end >= t0 && c.start <= t1).map((c) => c.ms);
  return { checkpointMs: t1 - t0, overlapping: during.length, p50: percentile(during, 0.5), p99: percentile(during, 0.99), max: Math.max(0, ...during) };
}

export async function checkpointBench(work: string): Promise<CheckpointBench> {
  const dir = path.join(work, 'checkpoint');
  fs.mkdirSync(dir, { recursive: true });
  const keyed = await shape(dir, true);
  const appendOnly = await shape(dir, false);
  return { walMib: WAL_MIB, appendOnly, keyed };
}

export function checkpointLines(r: CheckpointBench, fmt: (n: number, digits?: number) => string): string[] {
  const line = (name: string, s: CheckpointShape) =>
    `  ${name.padEnd(50)}checkpoint ${fmt(s.checkpointMs).padStart(6)} ms; ${String(s.overlapping).padStart(4)} commits beside it: p50 ${fmt(s.p50, 1).padStart(6)} ms, p99 ${fmt(s.p99, 1).padStart(7)} ms, slowest ${fmt(s.max).padStart(6)} ms`;
  return [
    '',
    `DuckDB checkpoint of about ${r.walMib} MiB of log, beside small commits (20 rows every 10 ms) on another connection`,
    line('baseline: commits that also update a keyed row', r.keyed),
    line('commits that only append (no index)', r.appendOnly),
    `  ratio slowest commit, append only / keyed         ${fmt(r.appendOnly.max / Math.max(1, r.keyed.max), 2).padStart(6)}`,
  ];
}
