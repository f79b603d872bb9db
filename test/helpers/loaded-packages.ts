import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Which npm packages a Node process loads, from any of its threads: a `--import` script
 * (given through NODE_OPTIONS, which worker threads inherit) registers a module resolve hook
 * in each thread that appends the package of every module resolved under node_modules to a
 * file. `node:module`'s register() is Node's documented customization hook.
 */
export interface LoadedPackages {
  /** NODE_OPTIONS for the process under test. */
  nodeOptions: string;
  /** The packages resolved so far (`pg`, `nats`, `@duckdb/node-api`…), once each. */
  read(): Set<string>;
}

export function watchLoadedPackages(dir: string): LoadedPackages {
  const out = path.join(dir, 'loaded.txt');
  const hooks = path.join(dir, 'hooks.mjs');
  const register = path.join(dir, 'register.mjs');
  fs.writeFileSync(out, '');
  fs.writeFileSync(
    hooks,
    `import fs from 'node:fs';
let out;
export function initialize(data) { out = data.out; }
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const m = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(r.url);
  if (m) fs.appendFileSync(out, m[1] + '\\n');
  return r;
}
`,
  );
  fs.writeFileSync(
    register,
    `import { register } from 'node:module';
register(${JSON.stringify(pathToFileURL(hooks).href)}, { data: { out: ${JSON.stringify(out)} } });
`,
  );
  return {
    nodeOptions: `--import=${pathToFileURL(register).href}`,
    read: () => new Set(fs.readFileSync(out, 'utf8').split('\n').filter((l) => l.length > 0)),
  };
}
