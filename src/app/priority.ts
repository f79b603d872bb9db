import fs from 'node:fs';
import os from 'node:os';

/**
 * Lowers the CPU priority of the calling thread, as databases do for their background work
 * (RocksDB's compaction threads, for one). sluice calls it from the store thread: when both
 * cores are busy, the HTTP thread (durable ingest) goes first and the store catches up from the
 * log, which is what the log is for; with an idle core it changes nothing.
 *
 * Linux only (a thread's priority is its own there, and /proc/thread-self names it); elsewhere,
 * or when not permitted, the thread keeps its priority. Returns whether it was lowered.
 */
export function lowerThreadPriority(): boolean {
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return false;
    os.setPriority(tid, os.constants.priority.PRIORITY_BELOW_NORMAL);
    return true;
  } catch {
    return false;
  }
}
