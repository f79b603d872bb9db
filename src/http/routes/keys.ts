import type { FastifyInstance } from 'fastify';
import { SluiceError } from '../../core/errors.js';
import { iso } from '../../core/time.js';
import { objectBody, optString } from '../fields.js';
import { authenticate } from '../auth.js';
import type { Catalog, KeyInfo, KeyScope } from '../../ports/catalog.js';

const SCOPES: readonly KeyScope[] = ['write', 'read', 'admin', 'schema'];

function wireKey(k: KeyInfo) {
  return { id: k.id, scope: k.scope, team: k.team, created_at: iso(k.createdAt), last_used_at: k.lastUsedAt === null ? null : iso(k.lastUsedAt), revoked_at: k.revokedAt === null ? null : iso(k.revokedAt) };
}

/**
 * The key in hand and the tenant's keys:
 * - `GET /v1/whoami` (any key): `{tenant, scope, key_id, team}`, so that a client (the
 *   console) shows only what the key may use. The API refuses the rest anyway.
 * - `GET /v1/keys` (admin): `{keys: [{id, scope, team, created_at, last_used_at, revoked_at}]}`,
 *   never a secret (only hashes are stored).
 * - `POST /v1/keys` (admin) `{scope, team?}` → 201 `{id, scope, team, key}`: the secret is
 *   in `key`, shown this once.
 * - `DELETE /v1/keys/:id` (admin) → 204; 404 for an id that is not the tenant's or already
 *   revoked. A key cannot revoke itself (that would lock out the operator mid-session).
 * Creations and revocations are audit-logged with the acting key's id.
 */
export async function keyRoutes(app: FastifyInstance, opts: { catalog: Catalog }): Promise<void> {
  const { catalog } = opts;

  app.get('/v1/whoami', async (request) => {
    const grant = await authenticate(catalog, request, SCOPES);
    return { tenant: grant.tenant, scope: grant.scope, key_id: grant.keyId, team: grant.team ?? null };
  });

  app.get('/v1/keys', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    return { keys: (await catalog.listKeys(tenant)).map(wireKey) };
  });

  app.post('/v1/keys', async (request, reply) => {
    const { tenant, keyId } = await authenticate(catalog, request, 'admin');
    const body = objectBody(await request.jsonBody(), ['scope', 'team']);
    const scope = optString(body, 'scope', 10);
    if (!scope || !SCOPES.includes(scope as KeyScope)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"scope" must be one of ${SCOPES.join(', ')}`, { field: 'scope' });
    const team = optString(body, 'team', 63);
    const key = await catalog.createKey(tenant, scope as KeyScope, team, keyId);
    const id = key.split('_')[2]!;
    return reply.code(201).header('cache-control', 'no-store').send({ id, scope, team: team ?? null, key });
  });

  app.delete<{ Params: { id: string } }>('/v1/keys/:id', async (request, reply) => {
    const { tenant, keyId } = await authenticate(catalog, request, 'admin');
    const id = request.params.id;
    if (id === keyId) throw new SluiceError('SLUICE_ERR_CONFLICT', 'a key cannot revoke itself: sign in with another admin key to revoke this one', { field: 'id' });
    const mine = (await catalog.listKeys(tenant)).find((k) => k.id === id && k.revokedAt === null);
    // Another tenant's key is "not found" too: nothing tells it exists.
    if (!mine || !(await catalog.revokeKey(id))) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no active key "${id.slice(0, 40)}"; GET /v1/keys lists them`, { field: 'id' });
    await catalog.audit({ tenant, actor: keyId, action: 'key.revoke', subject: id, detail: { scope: mine.scope, team: mine.team } });
    return reply.code(204).send();
  });
}
