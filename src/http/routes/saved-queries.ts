import type { FastifyInstance } from 'fastify';
import { SluiceError } from '../../core/errors.js';
import { iso } from '../../core/time.js';
import { objectBody, optString } from '../fields.js';
import { authenticate } from '../auth.js';
import type { Catalog } from '../../ports/catalog.js';
import { MAX_SAVED_QUERIES, type SavedQuery, type SavedQueryInput } from '../../ports/saved-queries.js';
import { parseQuery } from '../../core/query.js';

function wireSaved(q: SavedQuery) {
  return { id: q.id, name: q.name, query: q.query, created_at: iso(q.createdAt), updated_at: iso(q.updatedAt), created_by: q.createdBy };
}

/** A saved query's body: `{name, query}`, the query checked as POST /v1/query would check it. */
function parseInput(body: unknown, tenant: string, limits: { maxBuckets: number; maxRows: number }): SavedQueryInput {
  const o = objectBody(body, ['name', 'query']);
  const name = optString(o, 'name', 200);
  if (!name || !name.trim()) throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"name" must be 1 to 200 characters', { field: 'name' });
  const query = o.query;
  if (query === null || typeof query !== 'object' || Array.isArray(query)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"query" must be the JSON body of POST /v1/query', { field: 'query' });
  if (JSON.stringify(query).length > 16_384) throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"query" must be at most 16 KiB of JSON', { field: 'query' });
  try {
    parseQuery(query, tenant, Date.now(), limits);
  } catch (e: unknown) {
    if (e instanceof SluiceError) throw new SluiceError(e.code, `the saved query is not valid: ${e.message}`, { field: `query.${e.field ?? ''}`.replace(/\.$/, '') });
    throw e;
  }
  return { name: name.trim(), query: query as Record<string, unknown> };
}

/**
 * Saved queries of the key's tenant (read key to list and open them, read or admin to save):
 * `GET|POST /v1/saved-queries`, `GET|PUT|DELETE /v1/saved-queries/:id`. An id of another
 * tenant is 404, as if it did not exist.
 */
export async function savedQueryRoutes(app: FastifyInstance, opts: { catalog: Catalog; maxBuckets: number; maxRows: number }): Promise<void> {
  const { catalog } = opts;
  const limits = { maxBuckets: opts.maxBuckets, maxRows: opts.maxRows };
  const notFound = (id: string) => new SluiceError('SLUICE_ERR_NOT_FOUND', `no saved query "${id.slice(0, 40)}"; GET /v1/saved-queries lists them`, { field: 'id' });

  app.get('/v1/saved-queries', async (request) => {
    const { tenant } = await authenticate(catalog, request, ['read', 'admin']);
    return { saved_queries: (await catalog.savedQueries.list(tenant)).map(wireSaved) };
  });

  app.post('/v1/saved-queries', async (request, reply) => {
    const { tenant, keyId } = await authenticate(catalog, request, ['read', 'admin']);
    const saved = await catalog.savedQueries.create(tenant, parseInput(await request.jsonBody(), tenant, limits), keyId, MAX_SAVED_QUERIES);
    return reply.code(201).header('location', `/v1/saved-queries/${saved.id}`).send(wireSaved(saved));
  });

  app.get<{ Params: { id: string } }>('/v1/saved-queries/:id', async (request) => {
    const { tenant } = await authenticate(catalog, request, ['read', 'admin']);
    const q = await catalog.savedQueries.get(tenant, request.params.id);
    if (!q) throw notFound(request.params.id);
    return wireSaved(q);
  });

  app.put<{ Params: { id: string } }>('/v1/saved-queries/:id', async (request) => {
    const { tenant, keyId } = await authenticate(catalog, request, ['read', 'admin']);
    const q = await catalog.savedQueries.update(tenant, request.params.id, parseInput(await request.jsonBody(), tenant, limits), keyId);
    if (!q) throw notFound(request.params.id);
    return wireSaved(q);
  });

  app.delete<{ Params: { id: string } }>('/v1/saved-queries/:id', async (request, reply) => {
    const { tenant, keyId } = await authenticate(catalog, request, ['read', 'admin']);
    if (!(await catalog.savedQueries.remove(tenant, request.params.id, keyId))) throw notFound(request.params.id);
    return reply.code(204).send();
  });
}
