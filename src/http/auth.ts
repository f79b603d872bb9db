import type { FastifyRequest } from 'fastify';
import { SluiceError } from '../core/errors.js';
import type { Catalog, KeyGrant, KeyScope } from '../ports/catalog.js';

const BEARER = /^Bearer\s+(\S+)\s*$/i;
const BASIC = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i;

/**
 * The key a request presents: `Authorization: Bearer <key>`, or HTTP Basic with the key as
 * the user name and an empty password (what Segment libraries send); `fallback` (a key in the
 * body, as Segment also allows) when there is no header. Null when the header is malformed.
 */
export function presentedKey(header: string | undefined, fallback?: string): string | null | undefined {
  if (!header) return fallback;
  const bearer = BEARER.exec(header);
  if (bearer) return bearer[1]!;
  const basic = BASIC.exec(header);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? decoded : decoded.slice(0, colon);
  }
  return null;
}

/**
 * Authenticates a request and checks the key's scope. The tenant comes from the key,
 * never from the body (invariant 6).
 */
export async function authenticate(catalog: Catalog, request: FastifyRequest, scopes: KeyScope | readonly KeyScope[], fallbackKey?: string): Promise<KeyGrant> {
  const allowed: readonly KeyScope[] = typeof scopes === 'string' ? [scopes] : scopes;
  const scope = allowed.join(' or ');
  const key = presentedKey(request.headers.authorization, fallbackKey);
  if (key === undefined) {
    throw new SluiceError('SLUICE_ERR_UNAUTHORIZED', `missing Authorization header; send "Authorization: Bearer <${scope} key>"`, { field: 'Authorization' });
  }
  if (key === null) throw new SluiceError('SLUICE_ERR_UNAUTHORIZED', 'the Authorization header must be "Bearer <key>" (or Basic with the key as the user name)', { field: 'Authorization' });
  const grant = await catalog.verifyKey(key);
  if (!grant) throw new SluiceError('SLUICE_ERR_UNAUTHORIZED', 'the key is unknown, revoked or malformed', { field: 'Authorization' });
  if (!allowed.includes(grant.scope)) {
    throw new SluiceError('SLUICE_ERR_FORBIDDEN', `this is ${article(grant.scope)} key; ${request.method} ${request.routeOptions.url} needs ${article(scope)} key`, {
      field: 'Authorization',
    });
  }
  return grant;
}

/** "a read", "an admin". */
function article(word: string): string {
  return `${/^[aeiou]/i.test(word) ? 'an' : 'a'} ${word}`;
}
