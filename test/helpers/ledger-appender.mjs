// A process that appends batches of UUID-keyed events to the embedded log until it is killed.
// Usage: node ledger-appender.mjs FILE KEYS_FILE BATCH TAIL_KEYS. Prints "acked <batch index>"
// after each batch's append resolved. The keys are read from KEYS_FILE (one per line), so that
// a restarted process resends the same batches with the same keys.
import fs from 'node:fs';
import { SqliteLog } from '../../dist/backends/sqlite/log.js';

const [file, keysFile, batchText, tailText] = process.argv.slice(2);
const keys = fs.readFileSync(keysFile, 'utf8').split('\n').filter(Boolean);
const batch = Number(batchText);
const log = new SqliteLog({ file, partitions: 4, fsync: 'normal', dedupeHorizonMs: 86_400_000, retentionMs: 86_400_000, ledgerTailKeys: Number(tailText) });
const now = Date.now();
let next = 0;
const batches = Math.ceil(keys.length / batch);
await Promise.all(
  Array.from({ length: 4 }, async () => {
    while (next < batches) {
      const b = next++;
      const entries = keys.slice(b * batch, (b + 1) * batch).map((k, i) => ({
        tenant: 'acme', type: 'view', key: `user-${i}`, idempotencyKey: k, partition: i % 4, ts: now, receivedAt: now,
        origin: 'live', properties: '{}', context: '{}', trace: undefined,
      }));
      await log.append(entries);
      process.stdout.write(`acked ${b}\n`);
    }
  }),
);
await log.close();
process.stdout.write('done\n');
