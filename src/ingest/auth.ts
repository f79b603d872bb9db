import type { FastifyRequest } from 'fastify';
import { SluiceError } from '../core/errors.js';
import type { Catalog, KeyGrant, KeyScope } from '../ports/catalog.js';

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * Authenticates a request and checks the key's scope. The tenant comes from the key,
 * never from the body (invariant 6).
 */
export async function authenticate(catalog: Catalog, request: FastifyRequest, scopes: KeyScope | readonly KeyScope[]): Promise<KeyGrant> {
  const allowed: readonly KeyScope[] = typeof scopes === 'string' ? [scopes] : scopes;
  const scope = allowed.join(' or ');
  const header = request.headers.authorization;
  if (!header) {
    throw new SluiceError('SLUICE_ERR_UNAUTHORIZED', `missing Authorization header; send "Authorization: Bearer <${scope} key>"`, { field: 'Authorization' });
  }
  const m = BEARER.exec(header);
  if (!m) throw new SluiceError('SLUICE_ERR_UNAUTHORIZED', 'the Authorization header must be "Bearer <key>"', { field: 'Authorization' });
  const grant = await catalog.verifyKey(m[1]!);
  if (!grant) throw new SluiceError('SLUICE_ERR_UNAUTHORIZED', 'the key is unknown, revoked or malformed', { field: 'Authorization' });
  if (!allowed.includes(grant.scope)) {
    throw new SluiceError('SLUICE_ERR_FORBIDDEN', `this is a ${grant.scope} key; ${request.method} ${request.routeOptions.url} needs a ${scope} key`, {
      field: 'Authorization',
    });
  }
  return grant;
}
