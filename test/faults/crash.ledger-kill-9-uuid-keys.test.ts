import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { assertBuilt } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

const APPENDER = fileURLToPath(new URL('../helpers/ledger-appender.mjs', import.meta.url));
const KEYS = 60_000;
const BATCH = 100;
/** Small runs: the kills land in run writes and merge steps as well as in appends. */
const TAIL_KEYS = 700;
const KILLS = 6;

/**
 * A process appends 60,000 UUID-keyed events to the embedded log in batches of 100 and is
 * killed with SIGKILL at random moments (after 20 to 80 more batches were acknowledged), six times; each restart resends every batch from the
 * first, with the same keys (what a producer does with batches it was not sure of). The ledger
 * writes a run every 700 keys and merges them, so kills land in its background work too. At
 * the end every key is in the log exactly once: 0 lost, 0 doubled.
 */
it('crash.ledger-kill-9-with-uuid-keys-appends-every-key-exactly-once', async () => {
  assertBuilt();
  const dir = tmpDir();
  const file = path.join(dir, 'sluice.db');
  const keysFile = path.join(dir, 'keys.txt');
  const keys = Array.from({ length: KEYS }, () => randomUUID());
  fs.writeFileSync(keysFile, keys.join('\n'));
  const acked = new Set<number>();
  /** Runs the appender; kills it once `killAfter` more batches than before were acknowledged. */
  const run = (killAfter: number | null): Promise<{ done: boolean }> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [APPENDER, file, keysFile, String(BATCH), String(TAIL_KEYS)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      const target = killAfter === null ? Infinity : acked.size + killAfter;
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        for (const m of out.matchAll(/acked (\d+)\n/g)) acked.add(Number(m[1]));
        if (acked.size >= target) child.kill('SIGKILL');
      });
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.once('exit', (code, signal) => {
        if (signal === 'SIGKILL') resolve({ done: false });
        else if (code === 0) resolve({ done: out.includes('done\n') });
        else reject(new Error(`the appender exited with ${code}: ${err}`));
      });
    });
  let kills = 0;
  for (let i = 0; i < KILLS; i++) if (!(await run(20 + Math.floor(Math.random() * 60))).done) kills++;
  expect((await run(null)).done).toBe(true);
  expect(acked.size).toBe(KEYS / BATCH);

  const db = new Database(file, { readonly: true });
  const { n, d: distinct } = db.prepare('SELECT count(*) AS n, count(DISTINCT idem) AS d FROM records').get() as { n: number; d: number };
  const stored = new Set(db.prepare('SELECT idem FROM records').pluck().all() as string[]);
  const runs = db.prepare('SELECT count(*) FROM ledger_runs').pluck().get() as number;
  db.close();
  const lost = keys.filter((k) => !stored.has(k)).length;
  console.log('ledger kill -9 figures (uuid keys)', { keys: KEYS, kills, records: n, distinct, lost, doubled: n - distinct, runs });
  expect(kills).toBe(KILLS);
  expect(lost).toBe(0);
  expect(n - distinct).toBe(0);
  expect(n).toBe(KEYS);
}, 300_000);
