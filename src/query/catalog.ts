import type { Cell } from '../ports/store.js';
import type { StoreReader } from '../ports/reader.js';
import { parseQuery } from '../core/query.js';

/**
 * The tenant's event catalog, as the console's query builder offers it (`GET /v1/catalog`):
 * the event types seen in the last `windowMs`, each with its count and when it was last
 * received, and the property paths observed in a sample of its newest events with the JSON
 * types seen at each. Read-only; everything is scoped by the tenant given.
 *
 * The paths come from a sample (`sample` newest events per type), not from every event: a
 * property that only old events carry may be missing. Paths are those the query language
 * can name (see FIELD in spec.ts: names of letters, digits, "_" and "-", up to 8 deep);
 * arrays are typed but not entered.
 */
export interface EventCatalog {
  from: number;
  types: { type: string; count: number; lastSeen: number | null; properties: { path: string; types: JsonType[] }[] }[];
}

export type JsonType = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'null';

const NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const MAX_DEPTH = 8;
/** Types listed at most; the busiest first. */
export const CATALOG_MAX_TYPES = 100;

function jsonType(v: unknown): JsonType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'object' ? 'object' : (typeof v as 'string' | 'number' | 'boolean');
}

/** Pure: the paths of JSON objects (as `properties.<path>`) with the types seen at each, sorted by path. */
export function propertyPaths(samples: readonly unknown[]): { path: string; types: JsonType[] }[] {
  const seen = new Map<string, Set<JsonType>>();
  const walk = (v: unknown, path: string, depth: number): void => {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || depth >= MAX_DEPTH) return;
    for (const [k, child] of Object.entries(v)) {
      if (!NAME.test(k) || k === '__proto__' || k === 'constructor' || k === 'prototype') continue;
      const p = `${path}.${k}`;
      let types = seen.get(p);
      if (!types) seen.set(p, (types = new Set()));
      types.add(jsonType(child));
      walk(child, p, depth + 1);
    }
  };
  for (const s of samples) walk(s, 'properties', 0);
  return [...seen].map(([path, types]) => ({ path, types: [...types].sort() })).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export async function eventCatalog(reader: StoreReader, tenant: string, now: number, opts: { windowMs: number; sample: number; maxRows: number }): Promise<EventCatalog> {
  const q = parseQuery({ from: new Date(now - opts.windowMs).toISOString(), to: 'now', interval: null, group_by: ['type'], measures: ['count'] }, tenant, now, {
    maxBuckets: 1,
    maxRows: opts.maxRows,
  });
  const answer = await reader.query(q, opts.maxRows);
  const counted = answer.rows
    .map((r: Cell[]) => ({ type: String(r[0]), count: Number(r[1]) }))
    .sort((a, b) => b.count - a.count || (a.type < b.type ? -1 : 1))
    .slice(0, CATALOG_MAX_TYPES);
  const types = await Promise.all(
    counted.map(async ({ type, count }) => {
      const [newest, recent] = await Promise.all([
        reader.searchEvents({ tenant, type, from: q.from, to: now + 3_600_000, limit: 1 }),
        reader.recent(tenant, type, opts.sample),
      ]);
      const samples = recent.map((text) => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          return null;
        }
      });
      return { type, count, lastSeen: newest[0]?.receivedAt ?? null, properties: propertyPaths(samples) };
    }),
  );
  return { from: q.from, types };
}
