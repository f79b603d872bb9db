import fs from 'node:fs';
import path from 'node:path';
import { SluiceError } from '../core/errors.js';

/**
 * One `sluice up` per data directory: DuckDB admits one writing process, and a second server
 * would accept events that only the first can store. The lock is a pid file created
 * exclusively; one left by a process that no longer runs (kill -9, power loss) is taken over.
 * Returns the release function, which must not throw.
 */
export function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'sluice.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => {
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (e: unknown) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = Number(fs.readFileSync(file, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
      throw new SluiceError(
        'SLUICE_ERR_CONFIG',
        `another sluice (pid ${holder}) is running on ${path.resolve(dataDir)}; stop it first, or give this one its own --data-dir`,
        { field: 'dataDir' },
      );
    }
    fs.rmSync(file, { force: true });
  }
  throw new SluiceError('SLUICE_ERR_CONFIG', `could not lock ${path.resolve(dataDir)}: another process keeps taking ${file}`, { field: 'dataDir' });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e: unknown) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
