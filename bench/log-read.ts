import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import { SqliteLog } from '../src/backends/sqlite/log.js';
import { validateEvent } from '../src/core/event.js';
import type { LogEntry } from '../src/core/types.js';
import { eventsFor } from './load.js';

/**
 * The embedded log's read path, as the store's consumer uses it: `SqliteLog.read` in windows
 * of 5,000 with a lease and an ack per window, over every partition, beside the baseline of a
 * bare better-sqlite3 SELECT of the same rows from the same file (raw rows, nothing built).
 * Rounds alternate between the two (a fresh consumer group each round), so that drift on a
 * shared machine hits both; each figure is the best round.
 */
export interface LogReadFigure {
  records: number;
  readPerSecond: number;
  selectPerSecond: number;
}

const PARTITIONS = 16;

function entries(from: number, count: number, now: number): LogEntry[] {
  return eventsFor('read', from, count, now, 'uuid').map((text, i) => {
    const v = validateEvent(JSON.parse(text), 'bench', now, PARTITIONS, { maxEventBytes: 32_768, maxDepth: 32 });
    if (!v.ok) throw new Error(`bench event rejected: ${v.rejection.message}`);
    return { ...v.entry, trace: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', partition: (from + i) % PARTITIONS };
  });
}

export async function logReadBench(work: string, records: number, say: (line: string) => void): Promise<LogReadFigure> {
  const dir = path.join(work, 'log-read');
  fs.rmSync(dir, { recursive: true, force: true });
  const file = path.join(dir, 'sluice.db');
  const log = new SqliteLog({ file, partitions: PARTITIONS, fsync: 'off', dedupeHorizonMs: 7 * 86_400_000, retentionMs: 86_400_000 });
  try {
    say(`log read: writing ${records.toLocaleString('en-US')} records`);
    const now = Date.now();
    for (let from = 0; from < records; from += 1_000) await log.append(entries(from, Math.min(1_000, records - from), now));
    const bare = new Database(file, { readonly: true });
    const select = bare.prepare('SELECT * FROM records ORDER BY id').raw(true);
    let read = 0;
    let selected = 0;
    for (let round = 0; round < 3; round++) {
      say(`log read: round ${round + 1} of 3, SqliteLog.read beside a bare SELECT`);
      let n = 0;
      let t = performance.now();
      for (let p = 0; p < PARTITIONS; p++) {
        const lease = await log.acquire(`bench-${round}`, p, 'bench', 60_000);
        if (!lease) throw new Error(`no lease on partition ${p}`);
        for (let batch = await log.read(lease, 5_000); batch.length > 0; batch = await log.read(lease, 5_000)) {
          n += batch.length;
          await log.ack(lease, batch[batch.length - 1]!.offset);
        }
      }
      if (n !== records) throw new Error(`read ${n} of ${records} records`);
      read = Math.max(read, records / ((performance.now() - t) / 1000));
      t = performance.now();
      let m = 0;
      for (const row of select.iterate() as Iterable<unknown[]>) if (row.length > 0) m++;
      if (m !== records) throw new Error(`selected ${m} of ${records} rows`);
      selected = Math.max(selected, records / ((performance.now() - t) / 1000));
    }
    bare.close();
    return { records, readPerSecond: read, selectPerSecond: selected };
  } finally {
    await log.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function logReadLines(f: LogReadFigure, fmt: (n: number, digits?: number) => string): string[] {
  return [
    '',
    `log read: ${fmt(f.records)} records back through the consumer path (windows of 5,000, lease, ack), best of 3 rounds`,
    `  baseline: bare SELECT of the same rows        ${fmt(f.selectPerSecond).padStart(9)} rows/s`,
    `  SqliteLog.read                                ${fmt(f.readPerSecond).padStart(9)} records/s`,
    `  ratio read / SELECT                             ${fmt(f.readPerSecond / f.selectPerSecond, 2)}`,
  ];
}
