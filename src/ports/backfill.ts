/**
 * Backfill: rebuilding a derived table (a view) of one tenant from its raw events, for a
 * range of event time, while live commits go on.
 *
 * How a backend must do it (the DuckDB store is the reference):
 * 1. start: under the commit lock, take a snapshot of the applied offsets; raw events at or
 *    below them are the backfill's input, everything after is live.
 * 2. step: aggregate the next chunk of the input into a shadow table and advance the cursor,
 *    in one transaction (a crash resumes at the cursor; a chunk is never counted twice).
 * 3. finish: under the commit lock, add the events committed since the snapshot to the
 *    shadow, then replace the view's rows of that tenant and range with the shadow's, in one
 *    transaction. Live commits before it are in the catch-up, those after it update the new
 *    rows: the result equals a computation from scratch, and running it again changes
 *    nothing.
 */
export interface BackfillSpec {
  view: string;
  tenant: string;
  /** Event-time range [from, to) in epoch ms; null = from the first / to the last event. */
  from: number | null;
  to: number | null;
  /** Events per second at most; 0 = paced only by the store's own share of the CPU. */
  rate: number;
}

export type BackfillStatus = 'running' | 'done' | 'failed';

export interface BackfillState {
  id: string;
  view: string;
  tenant: string;
  from: number;
  to: number;
  rate: number;
  status: BackfillStatus;
  /** Events of the input aggregated so far, and in all. */
  done: number;
  total: number;
  startedAt: number;
  updatedAt: number;
  finishedAt: number | null;
  error: string | null;
}

export interface Backfills {
  /** The derived tables that can be rebuilt. */
  views(): string[];
  start(spec: BackfillSpec): Promise<BackfillState>;
  /** Aggregates the next chunk of about `events` input events; returns the new state (finished when the input is done). */
  step(id: string, events: number): Promise<BackfillState>;
  /** The backfills of a tenant (all tenants when omitted), newest first. */
  list(tenant?: string): Promise<BackfillState[]>;
  fail(id: string, error: string): Promise<void>;
}
