import { compileExpression, type CompileOptions, ExpressionError, type Expression } from './expression.js';

/**
 * The pipeline document: a tenant's ordered transform steps, a contract that outside checks
 * write. Each step is an object with exactly one step kind, plus the optional `types` (only
 * events of these types) and `when` (a CEL condition):
 *
 * ```
 * {"steps": [
 *   {"cast":   {"field": "properties.amount", "to": "number"}},   // number|integer|string|boolean|timestamp
 *   {"set":    {"field": "properties.amount_cents", "value": "int(properties.amount * 100.0 + 0.5)"}},
 *   {"rename": {"from": "properties.userID", "to": "properties.user_id"}},
 *   {"remove": {"fields": ["context.ip"]}},
 *   {"redact": {"fields": ["properties.email"], "how": "hash"}},   // hash (per-tenant salt) | mask
 *   {"drop":   {"when": "has(properties.bot) && properties.bot == true"}},
 *   {"dead_letter": {"when": "!has(properties.order_id)", "reason": "missing_order_id"}}
 * ]}
 * ```
 *
 * Fields are dotted paths under `properties.` or `context.` (the event's own `type`, `key`
 * and `ts` are not rewritten by steps).
 */
export interface PipelineDocument {
  steps: StepDocument[];
}

export type CastTarget = 'number' | 'integer' | 'string' | 'boolean' | 'timestamp';
export const CAST_TARGETS: readonly CastTarget[] = ['number', 'integer', 'string', 'boolean', 'timestamp'];
export type RedactHow = 'hash' | 'mask';

export type StepDocument = StepCommon &
  (
    | { cast: { field: string; to: CastTarget } }
    | { set: { field: string; value: string } }
    | { rename: { from: string; to: string } }
    | { remove: { fields: string[] } }
    | { redact: { fields: string[]; how: RedactHow } }
    | { drop: { when: string } }
    | { dead_letter: { when: string; reason: string } }
  );

export interface StepCommon {
  types?: string[];
  when?: string;
}

export const STEP_KINDS = ['cast', 'set', 'rename', 'remove', 'redact', 'drop', 'dead_letter'] as const;
export type StepKind = (typeof STEP_KINDS)[number];

/** A step, checked and its expressions compiled. `field` paths are split on dots. */
export type CompiledStep = {
  /** 0-based position in `steps`. */
  position: number;
  kind: StepKind;
  types: ReadonlySet<string> | null;
  when: Expression | null;
} & (
  | { kind: 'cast'; field: string[]; to: CastTarget }
  | { kind: 'set'; field: string[]; value: Expression }
  | { kind: 'rename'; from: string[]; to: string[] }
  | { kind: 'remove'; fields: string[][] }
  | { kind: 'redact'; fields: string[][]; how: RedactHow }
  | { kind: 'drop'; condition: Expression }
  | { kind: 'dead_letter'; condition: Expression; reason: string }
);

/** A document that does not check: `position` (0-based) and `kind` name the step at fault. */
export class PipelineError extends Error {
  constructor(
    message: string,
    readonly position: number | null,
    readonly kind: string | null,
    readonly field: string,
  ) {
    super(message);
    this.name = 'PipelineError';
  }
}

export const MAX_STEPS = 100;
const PATH = /^(properties|context)(\.[A-Za-z0-9_$@-]+){1,8}$/;
const REASON = /^[a-z][a-z0-9_]{0,62}$/;
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'prototype', 'constructor']);

/**
 * Checks `doc` and compiles its expressions. Throws PipelineError naming the step (kind and
 * 0-based position) and what is wrong, e.g. `step 2 (set): value: Unknown variable: foo`.
 */
export function compileDocument(doc: unknown, options: CompileOptions = {}): CompiledStep[] {
  if (!isObject(doc)) throw new PipelineError('the pipeline must be an object {"steps": [...]}', null, null, 'steps');
  for (const k of Object.keys(doc)) if (k !== 'steps') throw new PipelineError(`unknown key "${k}"; a pipeline has only "steps"`, null, null, k);
  if (!Array.isArray(doc.steps)) throw new PipelineError('"steps" must be an array', null, null, 'steps');
  if (doc.steps.length > MAX_STEPS) throw new PipelineError(`at most ${MAX_STEPS} steps`, null, null, 'steps');
  return doc.steps.map((s, i) => compileStep(s, i, options));
}

function compileStep(s: unknown, position: number, options: CompileOptions): CompiledStep {
  const at = `steps[${position}]`;
  const fail = (kind: string | null, message: string, field = at): never => {
    throw new PipelineError(`step ${position}${kind ? ` (${kind})` : ''}: ${message}`, position, kind, field);
  };
  if (!isObject(s)) return fail(null, 'a step must be an object with one of ' + STEP_KINDS.join(', '));
  const kinds = Object.keys(s).filter((k) => k !== 'types' && k !== 'when');
  if (kinds.length !== 1 || !(STEP_KINDS as readonly string[]).includes(kinds[0]!)) {
    return fail(null, `a step has exactly one kind of ${STEP_KINDS.join(', ')} (beside "types" and "when"); found ${kinds.map((k) => `"${k}"`).join(', ') || 'none'}`);
  }
  const kind = kinds[0] as StepKind;
  const body = s[kind];
  if (!isObject(body)) return fail(kind, `"${kind}" must be an object`, `${at}.${kind}`);
  const expr = (name: string, source: unknown, expect?: 'bool'): Expression => {
    try {
      return compileExpression(source as string, expect, options);
    } catch (e: unknown) {
      if (e instanceof ExpressionError) return fail(kind, `${name}: ${e.message}`, `${at}.${name}`);
      throw e;
    }
  };
  const path = (name: string, v: unknown): string[] => {
    if (v === undefined) return fail(kind, `${name}: required; write a dotted path under properties. or context., e.g. "properties.amount"`, `${at}.${kind}.${name}`);
    if (typeof v !== 'string' || !PATH.test(v) || v.split('.').some((p) => FORBIDDEN_SEGMENTS.has(p))) {
      return fail(kind, `${name}: ${JSON.stringify(v)} is not a field; write a dotted path under properties. or context., e.g. "properties.amount"`, `${at}.${kind}.${name}`);
    }
    return v.split('.');
  };
  const paths = (name: string, v: unknown): string[][] => {
    if (!Array.isArray(v) || v.length === 0) return fail(kind, `${name}: a non-empty array of fields`, `${at}.${kind}.${name}`);
    return v.map((x) => path(name, x));
  };
  const only = (...keys: string[]) => {
    for (const k of Object.keys(body)) if (!keys.includes(k)) fail(kind, `unknown key "${k}"; "${kind}" takes ${keys.join(', ')}`, `${at}.${kind}.${k}`);
  };
  let types: ReadonlySet<string> | null = null;
  if (s.types !== undefined) {
    if (!Array.isArray(s.types) || s.types.length === 0 || !s.types.every((t) => typeof t === 'string' && t !== '')) {
      fail(kind, '"types" must be a non-empty array of event types', `${at}.types`);
    }
    types = new Set(s.types as string[]);
  }
  const when = s.when === undefined ? null : expr('when', s.when, 'bool');
  const common = { position, types, when };
  switch (kind) {
    case 'cast': {
      only('field', 'to');
      if (!CAST_TARGETS.includes(body.to as CastTarget)) fail(kind, `to: one of ${CAST_TARGETS.join(', ')}`, `${at}.cast.to`);
      return { ...common, kind, field: path('field', body.field), to: body.to as CastTarget };
    }
    case 'set':
      only('field', 'value');
      return { ...common, kind, field: path('field', body.field), value: expr('value', body.value) };
    case 'rename':
      only('from', 'to');
      return { ...common, kind, from: path('from', body.from), to: path('to', body.to) };
    case 'remove':
      only('fields');
      return { ...common, kind, fields: paths('fields', body.fields) };
    case 'redact':
      only('fields', 'how');
      if (body.how !== 'hash' && body.how !== 'mask') fail(kind, 'how: "hash" or "mask"', `${at}.redact.how`);
      return { ...common, kind, fields: paths('fields', body.fields), how: body.how as RedactHow };
    case 'drop':
      only('when');
      return { ...common, kind, condition: expr('drop.when', body.when, 'bool') };
    case 'dead_letter':
      only('when', 'reason');
      if (typeof body.reason !== 'string' || !REASON.test(body.reason)) {
        fail(kind, 'reason: lower-case letters, digits and underscores, e.g. "missing_order_id"', `${at}.dead_letter.reason`);
      }
      return { ...common, kind, condition: expr('dead_letter.when', body.when, 'bool'), reason: body.reason as string };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
