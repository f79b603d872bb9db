import { type DuckDBConnection, type DuckDBResultReader, type DuckDBValue } from '@duckdb/node-api';
import duckdb from '@duckdb/node-bindings';
import fs from 'node:fs';
import os from 'node:os';

/**
 * The background lane of the embedded store's reads: CPU that the foreground leaves.
 *
 * DuckDB runs a query's tasks on the thread that asked for it (a libuv thread of Node's pool)
 * and on its own background threads. A query read here is started (its tasks scheduled) and
 * then only watched: the asking thread runs none of its tasks, so only a DuckDB background
 * thread started for the lane does, and that thread runs at the lowest OS priority (nice 19). The operating system
 * then gives it what the foreground (Node's main thread, other queries, commits) leaves: on an
 * idle core it runs at full speed, beside a neighbour's query it yields. The read pool sends a
 * tenant's queries here when they are much longer than another active tenant's
 * (read-pool.ts).
 *
 * Measured (bench/neighbour-queries.ts data, 2 cores, load average 6 to 7 from other work):
 * a neighbour's small queries had a p95 2.8x of quiet beside a heavy group-by run by its
 * caller, 1.0x beside the same group-by in this lane; the heavy tenant completed as many
 * queries in both.
 *
 * Lowering a thread's priority needs no privilege, but only Linux lets a process name its
 * threads by id (`/proc/self/task`); elsewhere the lane runs at normal priority and a heavy
 * query is still held to one thread.
 */

/** How often a query in the lane is looked at (ms); it ends at most this much after DuckDB finishes it. */
const POLL_MS = 4;
/** The background thread's OS priority (nice): the lowest. */
const NICE = 19;

const tasks = (): Set<string> => {
  try {
    return new Set(fs.readdirSync('/proc/self/task'));
  } catch {
    return new Set();
  }
};

/**
 * DuckDB's background thread for the lane, there only while a query runs in it: a thread that
 * is always there would also take tasks of foreground queries and commits, which would then wait
 * on its low priority (a heavy query alone took 6.2 s instead of 0.5 s on a loaded machine).
 *
 * States: idle (DuckDB on `threads` threads) → busy (one more, at low priority, from the first
 * query that enters until the last one leaves) → idle. Switches run one at a time on a
 * connection of the lane's own.
 */
export class BackgroundLane {
  private inside = 0;
  private switching: Promise<void> = Promise.resolve();
  /** Whether the last thread started for the lane runs at low priority (false where it could not be found or lowered). */
  lowPriority = false;

  constructor(
    private readonly c: DuckDBConnection,
    private readonly threads: number,
  ) {}

  /**
   * Reads the whole answer of `sql` on `reader`, leaving its tasks to the lane's thread. An
   * interrupted or failed query throws from `readAll`, as `runAndReadAll` would.
   */
  async read(reader: DuckDBConnection, sql: string, params?: DuckDBValue[]): Promise<DuckDBResultReader> {
    if (++this.inside === 1) this.switching = this.switching.then(() => this.setThreads(this.threads + 1));
    try {
      await this.switching;
      const pending = await reader.start(sql, params);
      // The driver keeps the handle private; its C API (duckdb_pending_execute_check_state)
      // reports progress without running a task, which the driver does not wrap.
      const handle = (pending as unknown as { pending_result: duckdb.PendingResult }).pending_result;
      for (;;) {
        const state = duckdb.pending_execute_check_state(handle);
        // Finished, failed or interrupted: readAll returns the rows or throws the query's error.
        if (state !== duckdb.PendingState.RESULT_NOT_READY && state !== duckdb.PendingState.NO_TASKS_AVAILABLE) break;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      return await pending.readAll();
    } finally {
      if (--this.inside === 0) this.switching = this.switching.then(() => this.setThreads(this.threads));
    }
  }

  /** Must not throw. */
  close(): void {
    try {
      this.c.closeSync();
    } catch {
      // Already closed.
    }
  }

  /** Must not throw: a failed switch leaves DuckDB's threads as they were. */
  private async setThreads(n: number): Promise<void> {
    const before = tasks();
    try {
      await this.c.run(`SET threads = ${n}`);
    } catch {
      return;
    }
    if (n <= this.threads) return;
    // The thread DuckDB just started: the one that appeared in /proc/self/task during the switch.
    const started = [...tasks()].filter((t) => !before.has(t)).map(Number);
    try {
      if (started.length !== 1) throw new Error('not found');
      os.setPriority(started[0]!, NICE);
      this.lowPriority = true;
    } catch {
      this.lowPriority = false;
    }
  }
}
