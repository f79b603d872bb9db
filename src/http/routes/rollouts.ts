import type { FastifyInstance } from 'fastify';
import { SluiceError } from '../../core/errors.js';
import type { Catalog } from '../../ports/catalog.js';
import { act, createRollout, getRollout, notFound, OPERATOR_ACTIONS, wireRolloutOf, fromRecord, type OperatorAction } from '../../rollout/service.js';
import { diffAnswer } from '../../rollout/diff-answer.js';
import { authenticate } from '../auth.js';

/** At most this many samples of each kind in `GET /v1/rollouts/:id/diff`. */
export const MAX_DIFF_SAMPLES = 100;

/**
 * Rollouts of the key's tenant (admin key): `POST|GET /v1/rollouts`, `GET /v1/rollouts/:id`,
 * `POST /v1/rollouts/:id/advance|pause|resume|abort|promote`, `GET /v1/rollouts/:id/diff?limit=`
 * (rollout/diff-answer.ts: `limit` samples of each kind and of each view). Every rollout
 * answered carries `candidate_missing` (see wireRolloutOf).
 * An id of another tenant is 404. Time is the app's clock (`now`).
 */
export async function rolloutRoutes(app: FastifyInstance, opts: { catalog: Catalog; now: () => number }): Promise<void> {
  const { catalog, now } = opts;

  app.post('/v1/rollouts', async (request, reply) => {
    const { tenant, keyId } = await authenticate(catalog, request, 'admin');
    const r = await createRollout(catalog, tenant, await request.jsonBody(), now(), keyId);
    return reply.code(201).header('location', `/v1/rollouts/${r.id}`).send(await wireRolloutOf(catalog, r));
  });

  app.get('/v1/rollouts', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    return { rollouts: await Promise.all((await catalog.rollouts.list(tenant)).map((rec) => wireRolloutOf(catalog, fromRecord(rec)))) };
  });

  app.get<{ Params: { id: string } }>('/v1/rollouts/:id', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    const r = await getRollout(catalog, tenant, request.params.id);
    if (!r) throw notFound(request.params.id);
    return wireRolloutOf(catalog, r);
  });

  app.get<{ Params: { id: string }; Querystring: { limit?: string } }>('/v1/rollouts/:id/diff', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    const r = await getRollout(catalog, tenant, request.params.id);
    if (!r) throw notFound(request.params.id);
    const raw = request.query.limit;
    const limit = raw === undefined ? 10 : Number(raw);
    if (!Number.isSafeInteger(limit) || limit < 0 || limit > MAX_DIFF_SAMPLES) {
      throw new SluiceError('SLUICE_ERR_INVALID_QUERY', `limit must be an integer from 0 to ${MAX_DIFF_SAMPLES}, got ${JSON.stringify(raw)}`, { field: 'limit' });
    }
    return diffAnswer(r.id, await catalog.rollouts.diff(r.id), limit);
  });

  for (const action of OPERATOR_ACTIONS) {
    app.post<{ Params: { id: string } }>(`/v1/rollouts/:id/${action}`, async (request) => {
      const { tenant, keyId } = await authenticate(catalog, request, 'admin');
      return wireRolloutOf(catalog, await act(catalog, tenant, request.params.id, action as OperatorAction, now(), keyId));
    });
  }
}
