/**
 * The parsed form of a CEL expression as cel-js 8 gives it (`env.parse(source).ast`, which the
 * library does not type), and the walks sluice's checks make over it. A node is `{op, args}`:
 * `id` an identifier (`args` its name), `value` a literal, `call` a function call and `rcall` a
 * method call (`args` = `[name, receiver, [arguments]]`; a comprehension macro's arguments are
 * its variable(s) and its body); `start`/`end` are offsets into the parsed source.
 */
export interface AstNode {
  op: string;
  args: unknown;
  start?: number;
  end?: number;
}

/** CEL's comprehension macros: the only iteration an expression has. */
export const COMPREHENSIONS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

export function isNode(v: unknown): v is AstNode {
  return !!v && typeof v === 'object' && 'op' in v;
}

/** A comprehension macro's node: `list.map(x, body)` and the other COMPREHENSIONS. */
export function isComprehension(n: AstNode): n is AstNode & { args: [string, unknown, unknown[]] } {
  return n.op === 'rcall' && Array.isArray(n.args) && COMPREHENSIONS.has(n.args[0] as string) && Array.isArray(n.args[2]);
}

/** Whether any node of `ast` (itself included, then everything under it) satisfies `test`. */
export function someNode(ast: unknown, test: (n: AstNode) => boolean): boolean {
  if (Array.isArray(ast)) return ast.some((n) => someNode(n, test));
  if (!isNode(ast)) return false;
  return test(ast) || someNode(ast.args, test);
}

/** How many nodes of `ast` satisfy `test`. */
export function countNodes(ast: unknown, test: (n: AstNode) => boolean): number {
  if (Array.isArray(ast)) return ast.reduce((sum: number, n) => sum + countNodes(n, test), 0);
  if (!isNode(ast)) return 0;
  return (test(ast) ? 1 : 0) + countNodes(ast.args, test);
}

/** Whether the AST names `name` as an identifier anywhere (a comprehension variable of that name counts). */
export function namesIdentifier(ast: unknown, name: string): boolean {
  return someNode(ast, (n) => n.op === 'id' && n.args === name);
}

/** Whether the AST calls a function or method named `name` anywhere. */
export function callsNamed(ast: unknown, name: string): boolean {
  return someNode(ast, (n) => (n.op === 'rcall' || n.op === 'call') && Array.isArray(n.args) && n.args[0] === name);
}
