import { countNodes, isComprehension, isNode, someNode } from './cel-ast.js';

/**
 * The cost of a comprehension whose body reads more of the event than its own item.
 *
 * Comprehensions may not nest (expression.ts), so each walks one list once. But an operator in
 * the body can walk another value of the event on every turn: `x in properties.allowed`,
 * `properties.text.contains(x)`, `x + properties.list`. Over a list of n items and a value of
 * m, that is n × m steps: 100,000 items against a list of 100,000 is 10^10 steps, minutes of
 * the store thread for one event. Such values are the body's loop invariants (subexpressions
 * that name no comprehension variable); they are found when the expression is compiled, and
 * each evaluation first weighs them against the event:
 *
 *   steps ≤ (items the event could offer a comprehension) × (weight of the invariants)
 *
 * where an event offers at most one item per list element, map entry or character of a string
 * (`split` makes a character an item), and a value weighs one per element or entry plus one
 * per 16 characters of its strings (comparisons and searches run a word at a time). A map
 * weighs its entries even where `in` looks a key up: cel-js works out a dynamic value's type
 * (`map<K, V>`) from its entries each time an operator meets it, so `i in properties.known`
 * with 50,000 keys took 16 s over 1,000 items. An
 * evaluation whose bound passes `MAX_ITERATION_STEPS` fails with an ExpressionError naming
 * the comprehension and the sizes, never the values, before anything of it runs: the same
 * event always gets the same answer (unlike a wall-clock limit, see expression.ts).
 */

/** The bound: measured, a comprehension at the bound (`in` over lists, cel-js 8) took about 30 ms. */
export const MAX_ITERATION_STEPS = 2_000_000;

/**
 * The same bound for one event through all of a pipeline's steps together: a comprehension
 * costs (items the event could offer) × (nodes of its body + the weight of its invariants) on
 * every evaluation, and the costs of one event's evaluations add up. Without it, 100 steps each
 * just under the bound (`l.exists(x, x * 1.5 + … < -1.0)` over 16,000 items) took 10-15 s of
 * the store thread per event. Past it the event fails (`transform_failed`), the same way on
 * every run.
 */
export interface EventBudget {
  /** Steps left for this event. */
  left: number;
}

export function eventBudget(): EventBudget {
  return { left: MAX_ITERATION_STEPS };
}

/**
 * The work of one turn of every comprehension in `ast`: per comprehension, 1 + the nodes of its
 * body (its list is evaluated once, outside the turns). 0 for an expression without one.
 */
export function comprehensionTurnWork(ast: unknown): { work: number; macro: string | null } {
  let work = 0;
  let macro: string | null = null;
  let largest = 0;
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!isNode(node)) return;
    if (isComprehension(node)) {
      const parts = node.args[2];
      const body = countNodes(parts[parts.length - 1], () => true);
      // The message names the comprehension with the largest body.
      if (body + 1 > largest) [largest, macro] = [body + 1, node.args[0]];
      work += 1 + body;
    }
    visit(node.args);
  };
  visit(ast);
  return { work, macro };
}

/** A body's loop invariant: its source text (of the compiled form), and the macro it sits in. */
export interface Invariant {
  source: string;
  macro: string;
}

/**
 * The maximal subexpressions of comprehension bodies that name no variable of the
 * comprehension and are not literals: each is the same value on every turn.
 */
export function loopInvariants(ast: unknown, source: string): Invariant[] {
  const out: Invariant[] = [];
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!isNode(node)) return;
    if (isComprehension(node)) {
      visit(node.args[1]);
      const parts = node.args[2];
      const vars = new Set(parts.slice(0, -1).flatMap((v) => (isNode(v) && v.op === 'id' ? [v.args as string] : [])));
      collect(parts[parts.length - 1], vars, node.args[0]);
      return;
    }
    visit(node.args);
  };
  const collect = (node: unknown, vars: Set<string>, macro: string): void => {
    if (Array.isArray(node)) return node.forEach((n) => collect(n, vars, macro));
    if (!isNode(node)) return;
    if (node.op === 'value') return;
    if (!namesAny(node, vars) && namesAny(node, null) && node.start !== undefined && node.end !== undefined) {
      out.push({ source: source.slice(node.start, node.end), macro });
      return;
    }
    collect(node.args, vars, macro);
  };
  visit(ast);
  return out;
}

/** Whether `node` names one of `vars` (or, with null, any identifier at all). */
function namesAny(node: unknown, vars: Set<string> | null): boolean {
  return someNode(node, (n) => n.op === 'id' && (vars === null || vars.has(n.args as string)));
}

/**
 * The weight of a value (see the module comment), counted up to `cap` and no further, so that
 * weighing costs at most `cap` steps however large the value.
 */
export function weigh(value: unknown, cap: number, chars = 16): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0 && total < cap) {
    const v = stack.pop();
    if (typeof v === 'string') total += 1 + Math.floor(v.length / chars);
    else if (Array.isArray(v)) {
      total += 1 + v.length;
      for (const x of v) if (x !== null && typeof x === 'object') stack.push(x);
      else if (typeof x === 'string') total += Math.floor(x.length / chars);
    } else if (v instanceof Map) {
      total += 1 + v.size;
      for (const x of v.values()) stack.push(x);
    } else if (v !== null && typeof v === 'object' && !(v instanceof Date) && !(v instanceof Uint8Array)) {
      for (const k in v) {
        if (!Object.hasOwn(v, k)) continue;
        total += 1 + Math.floor(k.length / chars);
        stack.push((v as Record<string, unknown>)[k]);
      }
    } else total += 1;
  }
  return Math.min(total, cap);
}

/**
 * What an expression may not say, found when a version is written (a stored version keeps
 * compiling as it was): forms whose cost or size grows faster than the event, so that no
 * bound per step would catch them before memory runs out. Returns the first, or null.
 *
 * - `cel.bind` (and any `cel.` macro): a bound name can be doubled 15 times over in an
 *   expression's 32 levels (`cel.bind(a, l + l, cel.bind(b, a + a, …))`: 2^15 copies of
 *   the event's list, the process out of heap), and it hides a loop invariant from the
 *   weighing above;
 * - a `map` over another `map`'s result (`l.map(x, [x]).map(y, y + y)…`): each link can
 *   multiply every item, 2^14 over 14 links; one `map` whose body builds what it needs does
 *   the same work;
 * - a comprehension over a list that reads the event more than twice (`(l + l + … + l)`): the
 *   turns are bounded by the event only if the list is;
 * - `join` with a separator that is not a literal: the result is items × the separator.
 */
export function costlyForm(ast: unknown): string | null {
  let found: string | null = null;
  const visit = (node: unknown): void => {
    if (found) return;
    if (Array.isArray(node)) return node.forEach(visit);
    if (!isNode(node)) return;
    if (node.op === 'rcall' && Array.isArray(node.args)) {
      const [name, receiver, args] = node.args as [string, unknown, unknown[]];
      if (isNode(receiver) && receiver.op === 'id' && receiver.args === 'cel') {
        found = `cel.${name} is not available in pipelines: a bound name can be doubled again and again within one expression; write the value out where it is used`;
        return;
      }
      if (isComprehension(node)) {
        if (name === 'map' && someNode(receiver, (n) => isComprehension(n) && n.args[0] === 'map')) {
          found = "map may not run over another map's result (each can multiply every item); build the value in one map's body";
          return;
        }
        if (eventReads(receiver) > 2) {
          found = `${name}: its list reads the event more than twice; a comprehension walks a list the event bounds`;
          return;
        }
      }
      if (name === 'join' && Array.isArray(args) && args.length > 0 && !(isNode(args[0]) && args[0].op === 'value')) {
        found = "join's separator must be a literal string (the result is the items times the separator)";
        return;
      }
    }
    visit(node.args);
  };
  visit(ast);
  return found;
}

/** How many times `node` names the event's maps (`properties`, `context`). */
function eventReads(node: unknown): number {
  return countNodes(node, (n) => n.op === 'id' && (n.args === 'properties' || n.args === 'context'));
}
