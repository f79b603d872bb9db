/**
 * The property paths of JSON objects and the JSON types seen at each (pure): what the
 * console's query builder offers (GET /v1/catalog). Paths are those the query language can
 * name (see FIELD in query.ts: names of letters, digits, "_" and "-", up to 8 deep); arrays
 * are typed but not entered.
 */
export type JsonType = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'null';

const NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const MAX_DEPTH = 8;

function jsonType(v: unknown): JsonType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'object' ? 'object' : (typeof v as 'string' | 'number' | 'boolean');
}

/** Pure: the paths of JSON objects (as `properties.<path>`) with the types seen at each, sorted by path; the first `maxPaths` found, at most. */
export function propertyPaths(samples: readonly unknown[], maxPaths = Infinity): { path: string; types: JsonType[] }[] {
  const seen = new Map<string, Set<JsonType>>();
  const walk = (v: unknown, path: string, depth: number): void => {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || depth >= MAX_DEPTH) return;
    for (const [k, child] of Object.entries(v)) {
      if (!NAME.test(k) || k === '__proto__' || k === 'constructor' || k === 'prototype') continue;
      const p = `${path}.${k}`;
      let types = seen.get(p);
      if (!types) {
        // Past `maxPaths`, paths not seen yet are not listed (nor walked into).
        if (seen.size >= maxPaths) continue;
        seen.set(p, (types = new Set()));
      }
      types.add(jsonType(child));
      walk(child, p, depth + 1);
    }
  };
  for (const s of samples) walk(s, 'properties', 0);
  return [...seen].map(([path, types]) => ({ path, types: [...types].sort() })).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
