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
 * Throws 400 `SLUICE_ERR_INVALID_BODY` naming the first pattern in `schema` that RE2 cannot
 * run, with its place as a JSON pointer under `schema` (e.g. `schema/properties/code/pattern`).
 */
export function checkPatterns(schema: unknown, at = 'schema'): void {
  if (Array.isArray(schema)) {
    schema.forEach((s, i) => checkPatterns(s, `${at}/${i}`));
    return;
  }
  if (schema === null || typeof schema !== 'object') return;
  for (const [k, v] of Object.entries(schema as Record<string, unknown>)) {
    const here = `${at}/${escapePointer(k)}`;
    if (DATA.has(k)) continue;
    if (k === 'pattern' && typeof v === 'string') refuseUnless(v, here);
    if (SCHEMA_MAPS.has(k) && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [name, sub] of Object.entries(v as Record<string, unknown>)) {
        if (k === 'patternProperties') refuseUnless(name, here);
        checkPatterns(sub, `${here}/${escapePointer(name)}`);
      }
      continue;
    }
    if (v !== null && typeof v === 'object') checkPatterns(v, here);
  }
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
