import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../core/errors.js';

/**
 * CORS (the Fetch standard's CORS protocol) for the ingest routes only, so that browsers can
 * send events from a site's own origin: sluice's SDK (`Authorization: Bearer <write key>`,
 * JSON, which needs a preflight) and Segment's analytics.js (`text/plain` with the write key
 * in the body, a "simple" request without one).
 *
 * - A preflight (`OPTIONS` with `Access-Control-Request-Method`) on an ingest path answers
 *   204 with the methods and headers allowed; it carries no key, so it cannot know the
 *   tenant and allows any origin the configuration allows for some tenant.
 * - The request itself is checked once its key is known: an `Origin` that the tenant does
 *   not allow (`cors.tenants[tenant]`, else `cors.origins`, `["*"]` by default) is refused
 *   with 403 before anything is appended; an allowed one gets `Access-Control-Allow-Origin`.
 * - Write keys only: the query, admin and ops routes never answer CORS, so a read or admin
 *   key is never usable from a page.
 */

export interface CorsPolicy {
  /** Allowed origins when the tenant has no list of its own; "*" = any. */
  origins: readonly string[];
  tenants: Readonly<Record<string, readonly string[]>>;
}

const ALLOW_HEADERS = 'authorization, content-type, content-encoding, traceparent, tracestate';
const MAX_AGE_S = 600;

/** The headers a preflight may be granted: sluice's own, and CloudEvents' `ce-*` attributes (binary mode). */
function allowHeaders(requested: string | string[] | undefined): string {
  const asked = (Array.isArray(requested) ? requested.join(',') : (requested ?? '')).split(',').map((h) => h.trim().toLowerCase());
  const ce = asked.filter((h) => /^ce-[a-z0-9]{1,20}$/.test(h));
  return ce.length > 0 ? `${ALLOW_HEADERS}, ${ce.join(', ')}` : ALLOW_HEADERS;
}

function allows(list: readonly string[], origin: string): boolean {
  return list.includes('*') || list.includes(origin);
}

/** The preflight routes for `paths`: 204 with the CORS headers, or 403 for an origin no tenant allows. */
export function preflightRoutes(app: FastifyInstance, paths: readonly string[], policy: CorsPolicy): void {
  const anyTenantAllows = (origin: string) => allows(policy.origins, origin) || Object.values(policy.tenants).some((l) => allows(l, origin));
  for (const url of paths) {
    app.options(url, async (request, reply) => {
      const origin = request.headers.origin;
      if (typeof origin !== 'string' || !anyTenantAllows(origin)) {
        throw new SluiceError('SLUICE_ERR_FORBIDDEN', `origin ${JSON.stringify(origin ?? null)} may not send events here; add it to cors.origins (or cors.tenants.<tenant>)`, { field: 'Origin' });
      }
      return reply
        .code(204)
        .header('access-control-allow-origin', origin)
        .header('vary', 'Origin')
        .header('access-control-allow-methods', 'POST, OPTIONS')
        .header('access-control-allow-headers', allowHeaders(request.headers['access-control-request-headers']))
        .header('access-control-max-age', String(MAX_AGE_S))
        .send();
    });
  }
}

/**
 * Checks a browser request's `Origin` against its tenant's list (throws 403) and sets the
 * response's CORS headers; a request without `Origin` (not from a browser page) passes.
 */
export function checkOrigin(request: FastifyRequest, reply: FastifyReply, tenant: string, policy: CorsPolicy): void {
  const origin = request.headers.origin;
  if (typeof origin !== 'string') return;
  const list = policy.tenants[tenant] ?? policy.origins;
  if (!allows(list, origin)) {
    throw new SluiceError('SLUICE_ERR_FORBIDDEN', `origin ${JSON.stringify(origin)} may not send events for this tenant; add it to cors.tenants.${tenant}`, { field: 'Origin' });
  }
  reply.header('access-control-allow-origin', list.includes('*') ? '*' : origin);
  if (!list.includes('*')) reply.header('vary', 'Origin');
}
