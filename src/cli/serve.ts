import type { Role } from '../app/roles.js';
import type { Config } from '../config/schema.js';

/**
 * Runs a server process (app/up.ts `serve`), loading the server only now: the client commands
 * (send, query, schema, …) start without reading Fastify, the HTTP routes, the store thread's
 * code and their dependencies, which took about half a second of CPU at every invocation.
 */
export async function serve(config: Readonly<Config>, roles: readonly Role[]): Promise<number> {
  return (await import('../app/up.js')).serve(config, roles);
}
