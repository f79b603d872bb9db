/**
 * Typed columns: the properties declared in an event type's schema, also stored as columns
 * beside the raw events, so that filters, group-bys and measures on them read columns instead
 * of parsing each event's JSON.
 *
 * A store that keeps them (the embedded DuckDB store) answers a query from them when every
 * field the query reads has a column and the columns are complete (built); otherwise from the
 * JSON, as a store without them always does. Both answer the same: a column holds exactly what
 * the query language reads from the JSON (the value as text, and that text as a finite number
 * or null), computed by the same SQL when the event is committed.
 *
 * States of one (tenant, type)'s columns: building (new rows are written to them at commit;
 * a backfill named `typed:<type>` fills in the past) → ready (queries read them). A schema
 * whose declared properties change gets a new set of columns, building, while the ready set
 * goes on answering for the properties it has; the new one replaces it when built.
 */
export interface TypedColumns {
  /**
   * Declares the properties of `type` that get columns (top-level names: the schema's
   * `properties`, then promoted ones; at most MAX_TYPED_PROPERTIES, the first in the order
   * given, the rest stay JSON-only). The same set again
   * changes nothing (`changed: false`); a different set starts a new building set of columns,
   * whose backfill the caller starts (`typed:<type>`). An empty set removes the columns.
   */
  declare(tenant: string, type: string, properties: readonly string[]): Promise<{ changed: boolean }>;

  /** Every set of columns of a tenant, ready and building. */
  list(tenant: string): Promise<TypedColumnsState[]>;

  /**
   * The undeclared properties promoted by how often raw queries read them, per event type
   * (see PROMOTION): what the caller declares beside the schema's. Promotions not read for
   * DEMOTE_AFTER_MS are dropped first. Ms since the epoch for `now`.
   */
  promoted?(tenant: string, now: number): Promise<Map<string, string[]>>;
}

/**
 * The rule that promotes an undeclared property to typed columns: a top-level property of an
 * event type that its schema does not declare (or of a type with no schema) gets columns once
 * PROMOTE_AFTER_QUERIES raw queries on that type read it (as a filter, a group-by or a measure)
 * within PROMOTE_WINDOW_MS, at most PROMOTED_PER_TYPE per type and PROMOTED_TYPES_PER_TENANT
 * types per tenant (first come: each set costs every commit of its type a fill, and a read key
 * can name any type); a promoted property
 * that no raw query reads for DEMOTE_AFTER_MS loses its columns. Queries answered from a view
 * or from typed columns do not count. Promoting or demoting changes the type's set of columns,
 * which is rebuilt like a schema change (a backfill `typed:<type>`); until then the JSON answers.
 * A promotion costs every commit of that type the columns' fill (see ARCHITECTURE.md).
 */
export const PROMOTION = {
  PROMOTE_AFTER_QUERIES: 10,
  PROMOTE_WINDOW_MS: 24 * 3_600_000,
  PROMOTED_PER_TYPE: 8,
  PROMOTED_TYPES_PER_TENANT: 16,
  DEMOTE_AFTER_MS: 7 * 24 * 3_600_000,
} as const;

/** Properties per event type that get columns: the first ones given (the schema's, in name order, before promoted ones). */
export const MAX_TYPED_PROPERTIES = 64;

export interface TypedColumnsState {
  tenant: string;
  type: string;
  /** Declared property names, sorted. */
  properties: string[];
  status: 'building' | 'ready';
  /** The backfill filling it in (building), null before one started. */
  build: string | null;
  /** Of `properties`, those promoted by raw queries (PROMOTION) rather than declared by the schema. */
  promoted?: string[];
}

/** The backfill name of a type's typed columns (a view name never holds a colon). */
export function typedBackfillName(type: string): string {
  return `typed:${type}`;
}

/** The type of a typed-columns backfill name; null for any other name. */
export function typedBackfillType(name: string): string | null {
  return name.startsWith('typed:') ? name.slice('typed:'.length) : null;
}
