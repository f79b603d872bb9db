import { RE2JS } from 're2js';
import { SluiceError } from '../core/errors.js';
import { escapePointer } from '../core/event.js';

/**
 * Every regular expression a user supplies (a schema's `pattern` and `patternProperties`)
 * runs on RE2's linear-time engine (re2js, a pure-JavaScript port of RE2), never on
 * JavaScript's backtracking one: a pattern such as `^(a+)+$` costs time proportional to the
 * input, so one tenant's schema cannot block the thread every tenant's ingest runs on.
 *
 * RE2 has no backreferences (`\1`) and no lookaround (`(?=`, `(?!`, `(?<=`, `(?<!`): those
 * need backtracking. A pattern that uses them is refused when the schema is published (400,
 * naming the keyword's place in the schema), never accepted and then run unsafely.
 */

/** What Ajv needs of a regular expression (its `code.regExp` option's result). */
export interface LinearRegExp {
  test(s: string): boolean;
  toString(): string;
}

/**
 * Compiles `pattern` for RE2. Ajv calls this with its unicode flag (`u`); RE2 always matches
 * by code point, so the flag changes nothing. Throws RE2's syntax error.
 */
export function linearRegExp(pattern: string, _flags?: string): LinearRegExp {
  const re = RE2JS.compile(pattern);
  return { test: (s: string) => re.test(s), toString: () => `/${pattern}/` };
}
// Ajv writes this name into the code it generates (standalone code is not used by sluice).
linearRegExp.code = 'linearRegExp';

/** Keywords whose value is a map of names to subschemas. */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);
/** Keywords whose value is data, not schema: a "pattern" inside them is not a pattern. */
const DATA = new Set(['const', 'enum', 'default', 'examples']);

/**
 * Calls `visit` with every schema object in `schema` (subschemas of every keyword, not data
 * such as `const` or `enum`) and its place as a JSON pointer under `at`.
 */
export function walkSchema(schema: unknown, visit: (node: Record<string, unknown>, at: string) => void, at = 'schema'): void {
  if (Array.isArray(schema)) {
    schema.forEach((s, i) => walkSchema(s, visit, `${at}/${i}`));
    return;
  }
  if (schema === null || typeof schema !== 'object') return;
  const node = schema as Record<string, unknown>;
  visit(node, at);
  for (const [k, v] of Object.entries(node)) {
    const here = `${at}/${escapePointer(k)}`;
    if (DATA.has(k)) continue;
    if (SCHEMA_MAPS.has(k) && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [name, sub] of Object.entries(v as Record<string, unknown>)) walkSchema(sub, visit, `${here}/${escapePointer(name)}`);
      continue;
    }
    if (v !== null && typeof v === 'object') walkSchema(v, visit, here);
  }
}

/**
 * Throws 400 `SLUICE_ERR_INVALID_BODY` naming the first pattern in `schema` that RE2 cannot
 * run, with its place as a JSON pointer under `schema` (e.g. `schema/properties/code/pattern`).
 */
export function checkPatterns(schema: unknown): void {
  walkSchema(schema, (node, at) => {
    if (typeof node.pattern === 'string') refuseUnless(node.pattern, `${at}/pattern`);
    const named = node.patternProperties;
    if (named !== null && typeof named === 'object' && !Array.isArray(named)) for (const name of Object.keys(named)) refuseUnless(name, `${at}/patternProperties`);
  });
}

/**
 * The most items an array under `uniqueItems` may hold when its items are not all of a scalar
 * type: Ajv compares such items pairwise (deep equality, n^2/2 comparisons), so 3,000 small
 * objects in one 32 KiB event cost about 4.5M comparisons, on the thread every tenant's
 * ingest runs on. Scalar items are checked through a map, in linear time.
 */
export const MAX_UNIQUE_ITEMS = 100;

const SCALARS = new Set(['string', 'number', 'integer', 'boolean', 'null']);

/**
 * Throws 400 naming the first `uniqueItems: true` whose array may hold items Ajv compares
 * pairwise (items not all of a scalar type) without `maxItems` of at most MAX_UNIQUE_ITEMS.
 */
export function checkUniqueItems(schema: unknown): void {
  walkSchema(schema, (node, at) => {
    if (node.uniqueItems !== true) return;
    const items = node.items as Record<string, unknown> | undefined;
    const types = items && typeof items === 'object' ? ([] as unknown[]).concat(items.type ?? []) : [];
    const scalar = types.length > 0 && types.every((t) => typeof t === 'string' && SCALARS.has(t));
    const max = typeof node.maxItems === 'number' ? node.maxItems : Infinity;
    if (scalar || max <= MAX_UNIQUE_ITEMS) return;
    throw new SluiceError(
      'SLUICE_ERR_INVALID_BODY',
      `${at}/uniqueItems: items that are not all of a scalar type are compared pairwise (time growing with the square of the array's length): give the array "maxItems" of at most ${MAX_UNIQUE_ITEMS}, or "items" of a scalar "type" (string, number, integer, boolean)`,
      { field: `${at}/uniqueItems` },
    );
  });
}

function refuseUnless(pattern: string, field: string): void {
  try {
    RE2JS.compile(pattern);
  } catch (e: unknown) {
    throw new SluiceError(
      'SLUICE_ERR_INVALID_BODY',
      `${field}: the pattern cannot run on sluice's linear-time regular expression engine (RE2): ${(e as Error).message}. Backreferences and lookaround are not supported; rewrite the pattern without them`,
      { field },
    );
  }
}
