import { Environment } from '@marcbachmann/cel-js';
import { linearRegExp, type LinearRegExp } from '../schema/patterns.js';
import { callsNamed, isComprehension, isNode, namesIdentifier } from './cel-ast.js';
import { comprehensionTurnWork, costlyForm, loopInvariants, MAX_ITERATION_STEPS, weigh, type EventBudget, type Invariant } from './iteration-cost.js';

/**
 * CEL expressions over one event (the Common Expression Language: https://github.com/google/cel-spec),
 * evaluated by @marcbachmann/cel-js. The event's fields are bound as `type` (string), `key`
 * (string), `ts` (timestamp), `properties` (map) and `context` (map). JSON numbers are CEL
 * doubles, as in CEL's own JSON mapping (google.protobuf.Value): write `properties.amount * 100.0`,
 * and `int(…)` to get an integer.
 *
 * Bounds (sandboxing):
 * - nothing but the event is reachable: no host functions are registered (but RE2's
 *   `matches`, below), maps are looked up by own key only (`properties.constructor`,
 *   `__proto__` are "no such key");
 * - `matches` runs in time linear in its input (RE2, see LINEAR_MATCHES);
 * - CEL has no loops; its comprehension macros (`all`, `exists`, `exists_one`, `map`,
 *   `filter`) may not nest (one in another's body; chained on another's result is fine),
 *   and an expression has at most `MAX_AST_NODES` nodes and `MAX_DEPTH` levels (checked when
 *   compiled), so that iteration costs at most (AST nodes) × (list length), and ingest bounds
 *   an event's size (`limits.eventBytes`). Two nested over a 5,000-item list took 1.8 s an
 *   event. An operator in a body that walks another value of the event on every turn
 *   (`x in properties.l`, `properties.s.contains(x)`) is weighed against the event before
 *   each evaluation, and refused past `MAX_ITERATION_STEPS` (iteration-cost.ts).
 *
 * The bound is static on purpose: a wall-clock limit per evaluation was tried and dead-lettered
 * ordinary events whenever a garbage collection or a busy core paused the store thread, so
 * that the same event had different fates on different runs.
 */
export const MAX_AST_NODES = 400;
/**
 * The most a value an expression computes may hold (characters of its strings plus items of
 * its lists and maps): 256 Ki, eight times the default event limit (`limits.eventBytes`,
 * 32 KiB). Past it the event fails (`transform_failed`): an expression could otherwise build
 * a value large enough to exhaust the heap (a list of copies of a long string).
 */
export const MAX_VALUE_SIZE = 262_144;
export const MAX_DEPTH = 32;
export const MAX_COMPREHENSION_DEPTH = 1;

/** The event as an expression sees it. */
export interface ExpressionEvent {
  type: string;
  key: string;
  /** Event time, epoch ms. */
  ts: number;
  properties: Record<string, unknown>;
  context: Record<string, unknown>;
}

/**
 * A compiled expression: evaluates to a JSON value (CEL ints become numbers, timestamps ISO
 * strings). `reads` names the event maps the expression refers to (a superset: a
 * comprehension variable of the same name counts), so that a caller need not parse the others.
 */
/**
 * A compiled expression: evaluates against an event; `budget`, when given, is the event's
 * iteration budget across the pipeline's steps (iteration-cost.ts EventBudget), spent by
 * this evaluation's comprehensions.
 */
export type Expression = ((event: ExpressionEvent, budget?: EventBudget) => unknown) & { readonly reads: ReadonlySet<'properties' | 'context'> };

/**
 * CEL declares `type` (the type of types) as a constant that a variable cannot shadow, so
 * the event's `type` is bound under this name and the identifier is renamed when compiled.
 */
const TYPE_VARIABLE = 'event__type';

/**
 * CEL's `string.matches(string)` as cel-js has it runs JavaScript's backtracking engine: a
 * pattern such as `^(a+)+$` on 30 characters blocks the thread for seconds. Calls to
 * `matches` are renamed, when compiled, to this function, which runs RE2's linear-time engine
 * (re2js, as schema patterns do: src/schema/patterns.ts). CEL specifies RE2 syntax for
 * `matches`, so every valid CEL pattern means the same; a pattern RE2 refuses (lookaround,
 * backreferences) is refused when the expression is compiled if it is a literal, or fails that
 * event (`transform_failed`) if it comes from the event.
 */
const LINEAR_MATCHES = 'sluice_linear_matches';
/** Compiled patterns, most recently used last: an expression usually has a literal one. */
const PATTERNS = new Map<string, LinearRegExp>();
const MAX_PATTERNS = 256;

function linearMatches(s: string, pattern: string): boolean {
  let re = PATTERNS.get(pattern);
  if (re) PATTERNS.delete(pattern);
  else {
    try {
      re = linearRegExp(pattern);
    } catch {
      // The pattern came from the event (a literal one was checked when compiled): its shape only, never its text.
      throw new Error(`matches: the pattern (${pattern.length} characters, from the event) is not one RE2 can run; CEL patterns are RE2 syntax: no lookaround, no backreferences`);
    }
    if (PATTERNS.size >= MAX_PATTERNS) PATTERNS.delete(PATTERNS.keys().next().value!);
  }
  PATTERNS.set(pattern, re);
  // CEL's matches is a search (unanchored), as a schema's pattern is.
  return re.test(s);
}

const env = new Environment({
  unlistedVariablesAreDyn: false,
  homogeneousAggregateLiterals: false,
  limits: { maxAstNodes: MAX_AST_NODES, maxDepth: MAX_DEPTH, maxListElements: 100, maxMapEntries: 100, maxCallArguments: 8 },
})
  .registerVariable(TYPE_VARIABLE, 'string')
  .registerVariable('key', 'string')
  .registerVariable('ts', 'google.protobuf.Timestamp')
  .registerVariable('properties', 'map')
  .registerVariable('context', 'map')
  .registerFunction(`string.${LINEAR_MATCHES}(string): bool`, linearMatches);

/** Thrown when an expression does not compile; `message` says where. */
export class ExpressionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpressionError';
  }
}

/**
 * Renames the identifier `type` (not a call `type(x)`, not a field `.type`, not inside a
 * string literal) to the variable the event's type is bound to, and the method `matches` to
 * the RE2 one (LINEAR_MATCHES). Comments are dropped first, so that none can come between a
 * dot, a name and its parenthesis and hide a call from the rename.
 */
export function bindTypeIdentifier(source: string): string {
  return eachOutsideStrings(source, (code) => renameIdentifiers(code.replace(/\/\/[^\n]*/g, ' ')));
}

/**
 * `source` with `edit` applied to each run of code between string literals (CEL's quotes,
 * triple quotes and raw strings), the literals kept as written.
 */
function eachOutsideStrings(source: string, edit: (code: string) => string): string {
  let out = '';
  let code = '';
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (c === '"' || c === "'") {
      const triple = source.startsWith(c.repeat(3), i);
      const quote = triple ? c.repeat(3) : c;
      const raw = i > 0 && /[rR]/.test(source[i - 1]!);
      let j = i + quote.length;
      while (j < source.length && !source.startsWith(quote, j)) j += !raw && source[j] === '\\' ? 2 : 1;
      j = Math.min(source.length, j + quote.length);
      out += edit(code) + source.slice(i, j);
      code = '';
      i = j;
      continue;
    }
    // A comment runs to the end of the line, quotes in it included.
    if (c === '/' && source[i + 1] === '/') {
      const end = source.indexOf('\n', i);
      code += source.slice(i, end === -1 ? source.length : end);
      i = end === -1 ? source.length : end;
      continue;
    }
    code += c;
    i++;
  }
  return out + edit(code);
}

/** The renames of bindTypeIdentifier in a run of code without string literals or comments. */
function renameIdentifiers(source: string): string {
  let out = '';
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < source.length && /[A-Za-z0-9_]/.test(source[j]!)) j++;
      const word = source.slice(i, j);
      const before = source.slice(0, i).trimEnd();
      const after = source.slice(j).trimStart();
      if (word === 'type' && !before.endsWith('.') && !after.startsWith('(')) out += TYPE_VARIABLE;
      else if (word === 'matches' && before.endsWith('.') && after.startsWith('(')) out += LINEAR_MATCHES;
      else out += word;
      i = j;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

/**
 * How deep comprehensions nest: one inside another's body (its predicate or transform) counts,
 * one chained on another's result (`list.map(x, …).filter(y, …)`, linear) does not.
 */
function comprehensionDepth(node: unknown): number {
  if (Array.isArray(node)) return Math.max(0, ...node.map(comprehensionDepth));
  if (!isNode(node)) return 0;
  if (isComprehension(node)) return Math.max(comprehensionDepth(node.args[1]), 1 + comprehensionDepth(node.args[2]));
  return comprehensionDepth(node.args);
}

/**
 * cel-js quotes some values in its evaluation errors (a map key looked up, a string given to
 * bool() or duration(), an overflowing integer); those can be the event's, and an error names
 * the field and the shape, never the payload. A key the expression itself spells is kept.
 */
function withoutEventValues(m: string, source: string): string {
  const shape = (v: string) => `(${v.length} characters)`;
  return m
    .replace(/^(No such key: )(.*)$/m, (all, head: string, key: string) => ([`.${key}`, `'${key}'`, `"${key}"`].some((spelled) => source.includes(spelled)) ? all : `No such key ${shape(key)}`))
    .replace(/^(bool\(\) conversion error: invalid string value )"(.*)"$/m, (_all, head: string, v: string) => head + shape(v))
    .replace(/^(Invalid duration string): (.*)$/m, (_all, head: string, v: string) => `${head} ${shape(v)}`)
    .replace(/^(integer overflow): .*$/m, '$1');
}

function plainMessage(e: unknown, source: string, fromEvent = false): string {
  const raw = e instanceof Error ? e.message : String(e);
  const m = fromEvent ? withoutEventValues(raw, source) : raw;
  const text = m.split('\n')[0]!.replaceAll(TYPE_VARIABLE, 'type').replaceAll(LINEAR_MATCHES, 'matches') + (m.includes('\n') ? ` (in "${source}")` : '');
  return MIXED_ARITHMETIC.test(m) ? `${text}; JSON numbers are CEL doubles: write a double literal (100.0, not 100), or convert with int(x) or double(x)` : text;
}

/** CEL has no arithmetic between a double and an int, and every JSON number is a double: the commonest mistake. */
const MIXED_ARITHMETIC = /no such overload: (dyn<)?double>? [-+*/%] (dyn<)?int|no such overload: (dyn<)?int>? [-+*/%] (dyn<)?double/;

/**
 * Compiles `source`. `expect` is the result type a step needs ('bool' for `when`), checked
 * when it can be known before evaluation. Throws ExpressionError naming what is wrong.
 */
/**
 * `stored`: compiling a version stored before the comprehension bound (nesting was allowed 2
 * deep until then); refusing it now would dead-letter every event of its tenant. A version
 * being written is always checked.
 */
export interface CompileOptions {
  stored?: boolean;
}

export function compileExpression(source: string, expect?: 'bool', options: CompileOptions = {}): Expression {
  if (typeof source !== 'string' || source.trim() === '') throw new ExpressionError('an expression must be a non-empty string');
  let parsed: ReturnType<typeof env.parse>;
  const bound = bindTypeIdentifier(source);
  try {
    parsed = env.parse(bound);
  } catch (e: unknown) {
    throw new ExpressionError(plainMessage(e, source));
  }
  const check = parsed.check();
  if (!check.valid) throw new ExpressionError(plainMessage(check.error, source));
  if (expect === 'bool' && check.type !== 'bool' && check.type !== 'dyn') throw new ExpressionError(`must be a condition (bool), not ${check.type}`);
  // Belt and braces: no call may reach cel-js's own (backtracking) matches.
  if (callsNamed(parsed.ast, 'matches')) throw new ExpressionError('write matches as a method call, text.matches(pattern)');
  for (const pattern of literalPatterns(parsed.ast)) {
    try {
      linearRegExp(pattern);
    } catch (e: unknown) {
      throw new ExpressionError(`matches: ${JSON.stringify(pattern.slice(0, 100))} is not a pattern RE2 can run (${(e as Error).message}); CEL patterns are RE2 syntax: no lookaround, no backreferences`);
    }
  }
  const costly = options.stored ? null : costlyForm(parsed.ast);
  if (costly) throw new ExpressionError(costly);
  if (comprehensionDepth(parsed.ast) > (options.stored ? 2 : MAX_COMPREHENSION_DEPTH)) {
    throw new ExpressionError('comprehensions (all, exists, exists_one, map, filter) may not nest: one inside another costs the square of the list\'s length; chain them (list.map(x, …).filter(y, …)) or test each list apart');
  }
  const invariants = loopInvariants(parsed.ast, bound).map((inv) => ({ ...inv, value: env.parse(inv.source) }));
  const turns = comprehensionTurnWork(parsed.ast);
  // A Date per evaluation only for the expressions that name `ts`.
  const readsTs = namesIdentifier(parsed.ast, 'ts');
  // One activation object per compiled expression, its fields replaced per evaluation (one
  // allocation less per event and expression). Safe because evaluation is synchronous and
  // cel-js keeps no reference to it after returning; the maps are released after each call so
  // that a compiled expression does not keep the last event alive.
  const activation: Activation = { [TYPE_VARIABLE]: '', key: '', ts: EPOCH, properties: NO_MAP, context: NO_MAP };
  const evaluate = (event: ExpressionEvent, budget?: EventBudget): unknown => {
    let value: unknown;
    activation[TYPE_VARIABLE] = event.type;
    activation.key = event.key;
    activation.ts = readsTs ? new Date(event.ts) : EPOCH;
    activation.properties = event.properties;
    activation.context = event.context;
    try {
      if (turns.work > 0) chargeIterations(invariants, turns, activation, event, budget);
      value = parsed(activation);
    } catch (e: unknown) {
      throw new ExpressionError(plainMessage(e, source, true));
    } finally {
      activation.properties = NO_MAP;
      activation.context = NO_MAP;
    }
    if (expect === 'bool' && typeof value !== 'boolean') throw new ExpressionError(`must be a condition (bool), got ${describe(value)}`);
    // A value is written into the event: bounded before it is turned into JSON (which would
    // copy a list of 10,000 references to one 20 KB string into 200 MB).
    if (typeof value === 'object' && value !== null && weigh(value, MAX_VALUE_SIZE + 1, 1) > MAX_VALUE_SIZE) {
      throw new ExpressionError(`the value is larger than ${MAX_VALUE_SIZE.toLocaleString('en-US')} characters and items; a step writes at most that into an event`);
    }
    if (typeof value === 'string' && value.length > MAX_VALUE_SIZE) {
      throw new ExpressionError(`the value is a string of ${value.length.toLocaleString('en-US')} characters, over ${MAX_VALUE_SIZE.toLocaleString('en-US')}; a step writes at most that into an event`);
    }
    return toJson(value);
  };
  return Object.assign(evaluate, { reads: mapsRead(parsed.ast) });
}

/**
 * Charges this evaluation's comprehensions to the event's budget, before any of them runs:
 * (items the event could offer) × (their bodies' nodes + the weight of their loop invariants).
 * Throws, naming the macro and the sizes (never the values), when that passes
 * MAX_ITERATION_STEPS for this expression or what is left of the event's budget across the
 * pipeline's steps (iteration-cost.ts). The weighing stops at the bound.
 */
function chargeIterations(
  invariants: readonly (Invariant & { value: (a: Activation) => unknown })[],
  turns: { work: number; macro: string | null },
  activation: Activation,
  event: ExpressionEvent,
  budget: EventBudget | undefined,
): void {
  let weight = turns.work;
  let heaviest: Invariant | null = null;
  let most = 0;
  for (const inv of invariants) {
    let w = 0;
    try {
      w = weigh(inv.value(activation), MAX_ITERATION_STEPS);
    } catch {
      // Fails again where the body reads it, if it is reached at all.
    }
    weight += w;
    if (w > most) [most, heaviest] = [w, inv];
  }
  const limit = Math.min(MAX_ITERATION_STEPS, budget?.left ?? MAX_ITERATION_STEPS);
  const cap = Math.ceil(limit / weight) + 1;
  const items = Math.min(cap, 100 + event.key.length + event.type.length + weigh(event.properties, cap, 1) + weigh(event.context, cap, 1));
  const steps = items * weight;
  if (steps <= limit) {
    if (budget) budget.left -= steps;
    return;
  }
  const upTo = `up to ${items.toLocaleString('en-US')}${items >= cap ? '+' : ''} items of this event`;
  const over = limit < MAX_ITERATION_STEPS ? `past what is left (${limit.toLocaleString('en-US')}) of the ${MAX_ITERATION_STEPS.toLocaleString('en-US')} steps one event may take through all the steps` : `past the limit of ${MAX_ITERATION_STEPS.toLocaleString('en-US')} steps`;
  if (heaviest && most * 2 >= weight) {
    throw new Error(
      `${heaviest.macro}: its body walks ${heaviest.source.slice(0, 60)} (weight ${most.toLocaleString('en-US')}) on each of ${upTo}, ${over}; compare with a literal list, or test those values outside the comprehension`,
    );
  }
  throw new Error(
    `${turns.macro}: its body (${weight.toLocaleString('en-US')} nodes a turn) runs on each of ${upTo}, ${over}; make the body smaller, or the list shorter (filter it first)`,
  );
}

/** Bound to `ts` for an expression that does not name it (CEL checks every declared variable's type). */
const EPOCH = new Date(0);

/** What an expression is evaluated against: the event's fields under their variable names. */
interface Activation {
  [TYPE_VARIABLE]: string;
  key: string;
  ts: Date;
  properties: Record<string, unknown>;
  context: Record<string, unknown>;
}

/** Bound to the maps of an activation between evaluations. */
const NO_MAP: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

/** JSON's exact integers (±2^53 − 1) as CEL ints, made once rather than per value. */
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_EXACT = BigInt(Number.MIN_SAFE_INTEGER);

/** The string literals passed as the pattern of `matches` anywhere in the AST. */
function literalPatterns(ast: unknown, out: string[] = []): string[] {
  if (Array.isArray(ast)) for (const n of ast) literalPatterns(n, out);
  else if (isNode(ast)) {
    const n = ast;
    if (n.op === 'rcall' && Array.isArray(n.args) && n.args[0] === LINEAR_MATCHES) {
      const [arg] = (n.args[2] ?? []) as { op?: string; args?: unknown }[];
      if (arg?.op === 'value' && typeof arg.args === 'string') out.push(arg.args);
    }
    literalPatterns(n.args, out);
  }
  return out;
}

/** The event maps (`properties`, `context`) an expression's AST names as identifiers. */
function mapsRead(ast: unknown): Set<'properties' | 'context'> {
  return new Set((['properties', 'context'] as const).filter((map) => namesIdentifier(ast, map)));
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v;
}

/** A CEL value as JSON: int/uint → number (within ±2^53), timestamp → ISO 8601, bytes → base64, duration → "1.5s". */
export function toJson(v: unknown): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ExpressionError(`${v} is not a JSON number`);
    return v;
  }
  if (typeof v === 'bigint') {
    if (v > MAX_EXACT || v < MIN_EXACT) throw new ExpressionError(`${v} is outside JSON's exact integers (±2^53)`);
    return Number(v);
  }
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map(toJson);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), toJson(x)]));
  if (typeof v === 'object') {
    const o = v as { constructor?: { name?: string }; toString(): string };
    if (o.constructor === Object) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
    // A CEL duration, a uint, a type value: their CEL spelling.
    const name = o.constructor?.name;
    if (name === 'Duration' || name === 'UnsignedInt') return String(o);
    throw new ExpressionError(`a ${name ?? 'value'} cannot be stored`);
  }
  throw new ExpressionError(`a ${typeof v} cannot be stored`);
}
