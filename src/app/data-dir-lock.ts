import fs from 'node:fs';
import path from 'node:path';
import { SluiceError } from '../core/errors.js';

/**
 * One `sluice up` per data directory: DuckDB admits one writing process, and a second server
 * would accept events that only the first can store. The lock is a pid file created
 * exclusively, holding the pid and that process's start time (Linux: /proc/<pid>/stat, in
 * clock ticks since boot). A file whose pid no longer runs (kill -9, power loss), or now
 * belongs to another process (the pid was reused after a reboot or a container restart:
 * its start time differs), is taken over. Where start times cannot be read, a live pid holds
 * the lock and the message says how to remove a stale file.
 *
 * The data directory is private to the server's user: created 0700, and the process's
 * umask set to 077 so that every file sluice creates in it (databases, WAL, pid file) is 0600.
 *
 * Returns the release function, which must not throw.
 */
export function lockDataDir(dataDir: string): () => void {
  privateDataDir(dataDir);
  const file = path.join(dataDir, 'sluice.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid} ${startTimeOf(process.pid) ?? ''}`.trim() + '\n', { flag: 'wx', mode: 0o600 });
      return () => {
        try {
          if (fs.readFileSync(file, 'utf8').trim().split(/\s+/)[0] === String(process.pid)) fs.unlinkSync(file);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (e: unknown) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const [pidText, started] = fs.readFileSync(file, 'utf8').trim().split(/\s+/);
    const holder = Number(pidText);
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && holds(holder, started)) {
      throw new SluiceError(
        'SLUICE_ERR_CONFIG',
        `another sluice (pid ${holder}) is running on ${path.resolve(dataDir)}; stop it first, or give this one its own --data-dir ` +
          `(if no sluice runs there, the lock ${file} is stale: remove it)`,
        { field: 'dataDir' },
      );
    }
    fs.rmSync(file, { force: true });
  }
  throw new SluiceError('SLUICE_ERR_CONFIG', `could not lock ${path.resolve(dataDir)}: another process keeps taking ${file}`, { field: 'dataDir' });
}

/** Creates `dataDir` 0700 if missing and makes every file this process creates 0600 (umask 077). */
export function privateDataDir(dataDir: string): void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  process.umask(0o077);
}

/** Whether the process that wrote the lock (pid, start time if recorded) still runs. */
function holds(pid: number, started: string | undefined): boolean {
  if (!alive(pid)) return false;
  // A process killed and not yet reaped by its parent (a zombie) holds nothing.
  if (procStat(pid)?.[0] === 'Z') return false;
  if (started === undefined) {
    // A lock written without a start time (by an earlier version): the pid may have been
    // reused since (a reboot, a container restart). The holder is a sluice process, whose
    // command line names it; unreadable (another OS, /proc hidden), a live pid is the holder.
    const cmdline = commandLineOf(pid);
    return cmdline === null || /sluice/i.test(cmdline);
  }
  const now = startTimeOf(pid);
  // Unreadable (another OS, or /proc hidden): a live pid is taken as the holder.
  return now === null || String(now) === started;
}

/** The fields of /proc/<pid>/stat after the command name (the state first), or null. */
function procStat(pid: number): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** A process's command line (arguments joined by spaces), or null when it cannot be read. */
function commandLineOf(pid: number): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return null;
  }
}

/** A process's start time (clock ticks after boot, field 22 of /proc/<pid>/stat), or null. */
export function startTimeOf(pid: number): number | null {
  const fields = procStat(pid);
  const ticks = Number(fields?.[22 - 3]);
  return fields && Number.isFinite(ticks) ? ticks : null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e: unknown) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
