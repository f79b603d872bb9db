import { SluiceError } from '../core/errors.js';
import type { BackfillSpec, BackfillState } from '../ports/backfill.js';
import { typedBackfillType } from '../ports/typed-columns.js';

/** What every store's backfill computes the same way (see ports/backfill.ts). */

/**
 * A table a backfill can rebuild: the built-in per-minute counts, or a tenant's view.
 * `aggregate` returns the statement that adds the events of `source` (a relation with the
 * events' columns, whose parameters are already in `p`) to table `into`, merging rows.
 */
export interface BackfillTarget<P, C = unknown> {
  table: string;
  /** DDL of an empty table like `table`, named `name`. */
  ddl(name: string): string;
  /** The event-time column of the table (epoch ms of the bucket), and the buckets' size. */
  bucketColumn: string;
  grainMs: number;
  /** The order the rebuilt rows are written in: rows read together stored together (zone maps skip the rest). */
  order: string;
  /** Aggregate over the table's rows that counts the events in them (progress). */
  events: string;
  aggregate(into: string, source: string, p: P): string;
  /** The events the table reads, as a predicate over the events' columns (a view's type and filters); absent: every event of the tenant. */
  where?(p: P): string;
  /** For a view: the backfill that currently builds it (a superseded build must stop). */
  build?: string | null;
  /**
   * For a view: whether it is built (answers queries). A view not built yet holds only what
   * was folded into it since it was declared, so a build of part of its range is widened to
   * its whole history: finishing it makes the view ready.
   */
  ready?: boolean;
  /**
   * Inside the swap's transaction: puts `table` (the built one, holding every row) in place of
   * the target's table, under its name, so that a query planned against the target before the
   * swap and run after it reads the built rows (a table dropped under it would fail the query).
   * Absent: the swap copies the built rows into the live table instead.
   */
  adopt?(c: C, table: string): Promise<void>;
}

/**
 * The range a backfill rebuilds: the spec's, or the tenant's first to last event, widened to
 * whole buckets of the table (the swap replaces whole rows).
 */
/** The table a build aggregates into (the build's shadow of the target's table), on either store. */
export const shadow = (id: string): string => `backfill_${id}`;

export function wholeBuckets(spec: BackfillSpec, minTs: number | null, maxTs: number | null, now: number, grainMs: number): { from: number; to: number } {
  const from = Math.floor((spec.from ?? minTs ?? now) / grainMs) * grainMs;
  const to = Math.ceil((spec.to ?? (maxTs ?? now) + 1) / grainMs) * grainMs;
  if (to <= from) throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"to" must be after "from"', { field: 'to' });
  return { from, to };
}

/**
 * The ends of a build's chunks (epoch ms). A chunk ends at the time of the `events`-th event
 * from its cursor, asked of the store (`nth`) within a window: MAX_SPAN_GROWTH times the span
 * that should hold them at the density (events per ms) its build's last chunk met, that span
 * at most the last chunk's (so a window grows at most MAX_SPAN_GROWTH-fold a chunk); the whole
 * range for a build's first chunk or after a chunk that found none. So a chunk reads at most
 * the events asked for (more only when they share its last millisecond), and the question
 * reads one window of the range, not the rest of it. Not whole buckets: every target's
 * aggregate merges into the rows a chunk before it wrote, so a bucket may be built by several
 * chunks. When chunks were whole buckets, a tenant whose events crowd one bucket (a day's, an
 * hour's) was built in one chunk whatever its size: forty thousand events of one hour, 0.7 s
 * of aggregation and a 0.4 s commit, which every other tenant's commits waited behind
 * (DuckDB writes a transaction out at its commit, and commits go one at a time).
 */
export class ChunkSpans {
  /** By build: the last chunk's density (events per ms) and span (ms). */
  private readonly last = new Map<string, { density: number; span: number }>();

  /** `nth(before)`: the time of the `events`-th event from the cursor before `before`, null when fewer are there. */
  async end(s: Pick<BackfillState, 'id' | 'to'> & { cursor: number }, events: number, nth: (before: number) => Promise<number | null>): Promise<number> {
    const last = this.last.get(s.id);
    const window = last ? Math.min(s.to, s.cursor + MAX_SPAN_GROWTH * Math.max(1, Math.min(last.span, Math.ceil(events / last.density)))) : s.to;
    const at = await nth(window);
    return at === null ? window : Math.max(s.cursor + 1, at);
  }

  /** A chunk from `from` to `to` (ms) read `events` events; none: the next chunk's window is the rest of the range. */
  read(id: string, from: number, to: number, events: number): void {
    if (events > 0 && to > from) this.last.set(id, { density: events / (to - from), span: to - from });
    else this.last.delete(id);
  }

  forget(id: string): void {
    this.last.delete(id);
  }
}

/** A chunk's window is this many times the span its build's last chunk suggests (see ChunkSpans). */
const MAX_SPAN_GROWTH = 4;

export function noSuchView(name: string): SluiceError {
  const type = typedBackfillType(name);
  if (type !== null) {
    return new SluiceError(
      'SLUICE_ERR_NOT_FOUND',
      `no typed columns of "${type.slice(0, 100)}" are being built: a backfill "typed:<type>" fills a set while its status is building (GET /v1/typed-columns); ` +
        'a ready set is kept up to date by every commit and needs none, and PostgreSQL keeps no typed columns. ' +
        'A type gets typed columns when its schema declares top-level properties, or when ten raw queries of it read an undeclared property within a day; the fill then starts by itself',
      { field: 'view' },
    );
  }
  return new SluiceError('SLUICE_ERR_NOT_FOUND', `no view "${name}"; counts_1m, or a view of the tenant (GET /v1/views)`, { field: 'view' });
}

export function superseded(name: string, build: string | null): SluiceError {
  return new SluiceError('SLUICE_ERR_CONFLICT', `view "${name}" changed or is being rebuilt by another backfill (${build ?? 'none'}); this one stops`, { field: 'view' });
}
