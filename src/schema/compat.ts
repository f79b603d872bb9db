/**
 * Schema compatibility: does the new version accept every value the old one accepted?
 * (Producers that conform to the old schema must keep working the moment a new version is
 * published.)
 *
 * Deciding inclusion between two JSON Schemas is hard in general; this check is
 * conservative. It understands the keywords that describe data shapes (type, enum, const,
 * properties, required, additionalProperties, items, the numeric, length and count bounds,
 * multipleOf, pattern, format) and treats any other keyword whose value changed as a
 * possible narrowing. So it never calls a narrowing compatible, and sometimes calls a safe
 * change incompatible: that is what `force` with a reason, and the check against recent
 * traffic, are for. Pure: no I/O.
 */

import { escapePointer } from '../core/event.js';

export interface Incompatibility {
  /** JSON pointer into the event (`/properties/...`) where the new version is narrower. */
  path: string;
  message: string;
}

type Schema = boolean | Record<string, unknown>;

const SHAPE_KEYWORDS = new Set([
  'type', 'enum', 'const', 'properties', 'required', 'additionalProperties', 'items',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength',
  'minItems', 'maxItems', 'minProperties', 'maxProperties', 'multipleOf', 'pattern', 'format',
]);
/** Keywords that never restrict what validates. */
const ANNOTATIONS = new Set(['$schema', '$id', '$comment', 'title', 'description', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly', '$defs', 'definitions']);
const ALL_TYPES = ['null', 'boolean', 'object', 'array', 'number', 'integer', 'string'];
const LOWER = ['minimum', 'exclusiveMinimum', 'minLength', 'minItems', 'minProperties'] as const;
const UPPER = ['maximum', 'exclusiveMaximum', 'maxLength', 'maxItems', 'maxProperties'] as const;

function obj(s: Schema | undefined): Record<string, unknown> | null {
  if (s === undefined || s === true) return {};
  if (s === false) return null;
  return s;
}

function typesOf(s: Record<string, unknown>): string[] {
  const t = s.type;
  if (t === undefined) return ALL_TYPES;
  return Array.isArray(t) ? (t as string[]) : [t as string];
}

function accepts(types: string[], t: string): boolean {
  return types.includes(t) || (t === 'integer' && types.includes('number'));
}


function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Values the schema restricts to (enum or const), or null when it does not. */
function valuesOf(s: Record<string, unknown>): unknown[] | null {
  if ('const' in s) return [s.const];
  if (Array.isArray(s.enum)) return s.enum as unknown[];
  return null;
}

function walk(oldS: Schema | undefined, newS: Schema | undefined, path: string, out: Incompatibility[]): void {
  const o = obj(oldS);
  const n = obj(newS);
  if (o === null) return; // The old schema accepted nothing here.
  if (n === null) {
    out.push({ path, message: 'the new version accepts nothing here (false)' });
    return;
  }
  if (Object.keys(n).every((k) => ANNOTATIONS.has(k))) return; // Accepts anything.

  const oTypes = typesOf(o);
  const nTypes = typesOf(n);
  const lost = oTypes.filter((t) => !accepts(nTypes, t));
  if (lost.length > 0) out.push({ path, message: `type ${lost.join(', ')} is no longer accepted (now ${nTypes.join(', ')})` });

  const nValues = valuesOf(n);
  if (nValues !== null) {
    const oValues = valuesOf(o);
    if (oValues === null) out.push({ path, message: 'values are now restricted to an enum or const' });
    else {
      const gone = oValues.filter((v) => !nValues.some((w) => same(v, w)));
      if (gone.length > 0) out.push({ path, message: `value${gone.length > 1 ? 's' : ''} ${gone.map((v) => JSON.stringify(v)).join(', ')} no longer accepted` });
    }
  }

  for (const k of LOWER) {
    if (typeof n[k] === 'number' && !(typeof o[k] === 'number' && (o[k] as number) >= (n[k] as number))) {
      out.push({ path, message: `${k} ${String(n[k])} is stricter than before (${o[k] === undefined ? 'none' : String(o[k])})` });
    }
  }
  for (const k of UPPER) {
    if (typeof n[k] === 'number' && !(typeof o[k] === 'number' && (o[k] as number) <= (n[k] as number))) {
      out.push({ path, message: `${k} ${String(n[k])} is stricter than before (${o[k] === undefined ? 'none' : String(o[k])})` });
    }
  }
  if (typeof n.multipleOf === 'number' && !(typeof o.multipleOf === 'number' && Number.isInteger(o.multipleOf / n.multipleOf))) {
    out.push({ path, message: `multipleOf ${n.multipleOf} is stricter than before` });
  }
  for (const k of ['pattern', 'format'] as const) {
    if (n[k] !== undefined && !same(n[k], o[k])) out.push({ path, message: `${k} ${JSON.stringify(n[k])} differs from before (${JSON.stringify(o[k] ?? null)})` });
  }

  // Objects.
  const oRequired = new Set(Array.isArray(o.required) ? (o.required as string[]) : []);
  for (const r of Array.isArray(n.required) ? (n.required as string[]) : []) {
    if (!oRequired.has(r) && accepts(oTypes, 'object')) out.push({ path: `${path}/${escapePointer(r)}`, message: `"${r}" is newly required` });
  }
  const oProps = (o.properties ?? {}) as Record<string, Schema>;
  const nProps = (n.properties ?? {}) as Record<string, Schema>;
  const oAdditional = o.additionalProperties as Schema | undefined;
  const nAdditional = n.additionalProperties as Schema | undefined;
  for (const [k, ns] of Object.entries(nProps)) {
    // What the old version accepted under k: its own schema for k, or its additionalProperties.
    walk(k in oProps ? oProps[k] : oAdditional, ns, `${path}/${escapePointer(k)}`, out);
  }
  for (const [k, os] of Object.entries(oProps)) {
    if (!(k in nProps)) walk(os, nAdditional, `${path}/${escapePointer(k)}`, out);
  }
  if (nAdditional !== undefined) walk(oAdditional, nAdditional, `${path}/*`, out);

  // Arrays.
  if (n.items !== undefined) walk(o.items as Schema | undefined, n.items as Schema, `${path}/*`, out);

  for (const k of Object.keys(n)) {
    if (SHAPE_KEYWORDS.has(k) || ANNOTATIONS.has(k)) continue;
    if (!same(n[k], o[k])) out.push({ path, message: `"${k}" changed; sluice cannot prove the new version accepts as much as the old` });
  }
}

/** Where the new schema of `properties` is narrower than the old one; empty when it accepts everything the old one did. */
export function incompatibilities(oldSchema: Schema, newSchema: Schema): Incompatibility[] {
  const out: Incompatibility[] = [];
  walk(oldSchema, newSchema, '/properties', out);
  return out;
}
