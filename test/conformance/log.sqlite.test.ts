import path from 'node:path';
import { SqliteLog } from '../../src/backends/sqlite/log.js';
import { tmpDir } from '../helpers/tmp.js';
import { logConformance } from './log-suite.js';

logConformance('sqlite', async (partitions) => {
  const file = path.join(tmpDir(), 'log.db');
  let now = Date.now();
  const open = () =>
    new SqliteLog({ file, partitions, fsync: 'always', dedupeHorizonMs: 86_400_000, retentionMs: 0, clock: { now: () => now } });
  let log = open();
  return {
    get log() {
      return log;
    },
    advance: (ms) => {
      now += ms;
    },
    reopen: async () => {
      await log.close();
      log = open();
      return log;
    },
  };
});
