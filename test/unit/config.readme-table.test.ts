import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { environmentVariables } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';

/**
 * The README's configuration section documents every field of the schema with its
 * environment variable, and every other variable the code reads; it names no variable the
 * code does not read.
 */

const README = fs.readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../README.md'), 'utf8');
const section = README.slice(README.indexOf('## Configuration'), README.indexOf('\n## ', README.indexOf('## Configuration') + 1));

/** The table's rows: the field (first cell, in backticks) and the variables named in its env cell. */
function rows(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^\| `([A-Za-z.]+)` \| ([^|]*) \|/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

type Schema = { type?: string; properties?: Record<string, Schema> };

function fieldType(field: string): string | undefined {
  let s: Schema = configSchema as unknown as Schema;
  for (const k of field.split('.')) s = s.properties![k]!;
  return s.type;
}

/** Lists the environment may set, comma-separated (see src/config/load.ts). */
const COMMA_LISTS = new Set(['cors.origins']);
const fileOnly = (field: string): boolean => (fieldType(field) === 'array' && !COMMA_LISTS.has(field)) || fieldType(field) === 'object';

describe('the configuration table of the README', () => {
  it('config.every-field-and-variable-is-documented-and-nothing-else', () => {
    const table = rows();
    const vars = environmentVariables();
    const fields = vars.filter((v) => v.field !== null);
    expect(fields.length).toBeGreaterThan(50);
    for (const { field, name } of fields) {
      expect(table.has(field!), `README: no row for \`${field}\``).toBe(true);
      // Arrays and maps are set in the configuration file only, but for the lists the loader reads comma-separated (cors.origins).
      if (fileOnly(field!)) expect(table.get(field!)).toContain('(config file)');
      else expect(table.get(field!), `README: the row of \`${field}\` should name ${name}`).toContain(`\`${name}\``);
    }
    expect([...table.keys()].sort()).toEqual(fields.map((f) => f.field!).sort());
    // Every variable named in the section is one the code reads, and the reverse.
    const named = new Set([...section.matchAll(/`((?:SLUICE|OTEL)_[A-Z_]+)`/g)].map((m) => m[1]!));
    const read = new Set(vars.filter((v) => v.field === null || !fileOnly(v.field)).map((v) => v.name));
    expect([...named].sort()).toEqual([...read].sort());
    expect(table.get('logLevel')).toContain('`SLUICE_LOG_LEVEL`');
  });
});
