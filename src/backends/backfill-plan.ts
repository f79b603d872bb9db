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
 * The end of the next chunk: it spans the time that should hold about `events` input events
 * (from the mean density of the range), whole buckets, so that a bucket's rows are built by
 * one chunk.
 */
export function chunkEnd(s: Pick<BackfillState, 'from' | 'to' | 'total'> & { cursor: number }, events: number, grainMs: number): number {
  const density = s.total / Math.max(grainMs, s.to - s.from);
  const span = Math.max(grainMs, Math.floor(events / Math.max(density, 1e-9) / grainMs) * grainMs);
  return Math.min(s.to, s.cursor + span);
}

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
