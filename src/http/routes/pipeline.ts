import type { FastifyInstance } from 'fastify';
import { SluiceError } from '../../core/errors.js';
import type { Catalog } from '../../ports/catalog.js';
import type { PipelineVersion } from '../../ports/pipelines.js';
import type { StoreReader } from '../../ports/reader.js';
import type { ExpressionEvent } from '../../transform/expression.js';
import { compileOrRefuse, putPipeline, runPipelineTest, testEvent, type PipelineTester } from '../../transform/versions.js';
import { authenticate } from '../auth.js';
import { objectBody, optInt, optString } from '../fields.js';

const MAX_TEST_EVENTS = 1000;

function wire(v: PipelineVersion | null, tenant: string) {
  if (!v) return { tenant, version: 0, steps: [], created_at: null, created_by: null };
  return { tenant, version: v.version, steps: v.steps, created_at: new Date(v.createdAt).toISOString(), created_by: v.createdBy };
}

/**
 * A tenant's transform pipeline over HTTP (admin keys): GET|PUT /v1/pipeline (the live
 * version; PUT writes a version and makes it live), POST /v1/pipeline/versions (stores a
 * version without making it live), GET /v1/pipeline/versions (each marked live or not),
 * GET /v1/pipeline/versions/:n, POST /v1/pipeline/test.
 */
export function pipelineRoutes(
  app: FastifyInstance,
  deps: {
    catalog: Catalog;
    reader: Pick<StoreReader, 'searchEvents'>;
    now?: () => number;
    /** Where tests run: on this thread unless given (`sluice up` gives a thread per test, src/app/pipeline-tests.ts). */
    test?: PipelineTester;
  },
): void {
  const { catalog } = deps;
  const now = deps.now ?? Date.now;
  const test: PipelineTester = deps.test ?? (async (_tenant, doc, events, salt) => runPipelineTest(doc, events, salt));

  app.get('/v1/pipeline', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    return wire(await catalog.pipelines.current(tenant), tenant);
  });

  app.put('/v1/pipeline', async (request) => {
    const grant = await authenticate(catalog, request, 'admin');
    const body = objectBody(await request.jsonBody(), ['steps', 'expected_version']);
    // A version made live under a rollout of another would change its baseline, and its promote would undo this one.
    const rolling = (await catalog.rollouts.list(grant.tenant)).find((r) => r.active && r.kind === 'pipeline_version');
    if (rolling) {
      throw new SluiceError('SLUICE_ERR_CONFLICT', `rollout ${rolling.id} is taking a pipeline version live; promote or abort it first (POST /v1/rollouts/${rolling.id}/promote|abort), or store this version with POST /v1/pipeline/versions`, {
        field: 'steps',
      });
    }
    const v = await putPipeline(catalog.pipelines, grant.tenant, { steps: body.steps, actor: grant.keyId, expectedVersion: optInt(body, 'expected_version', 0, 1_000_000_000) });
    return wire(v, grant.tenant);
  });

  // A version stored without being made live: a candidate that a rollout takes live (POST /v1/rollouts).
  app.post('/v1/pipeline/versions', async (request, reply) => {
    const grant = await authenticate(catalog, request, 'admin');
    const body = objectBody(await request.jsonBody(), ['steps']);
    const v = await putPipeline(catalog.pipelines, grant.tenant, { steps: body.steps, actor: grant.keyId, activate: false });
    return reply.code(201).send({ ...wire(v, grant.tenant), live: false });
  });

  app.get<{ Querystring: Record<string, string> }>('/v1/pipeline/versions', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    const limit = optInt(request.query, 'limit', 1, 1000) ?? 100;
    const versions = await catalog.pipelines.list(tenant, limit);
    const live = (await catalog.pipelines.current(tenant))?.version ?? 0;
    return {
      live_version: live,
      versions: versions.map((v) => ({ version: v.version, live: v.version === live, step_count: v.steps.length, created_at: new Date(v.createdAt).toISOString(), created_by: v.createdBy })),
    };
  });

  app.get<{ Params: { n: string } }>('/v1/pipeline/versions/:n', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    const n = optInt({ version: request.params.n }, 'version', 1, 1_000_000_000)!;
    const v = await catalog.pipelines.get(tenant, n);
    if (!v) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `the pipeline has no version ${n}; GET /v1/pipeline/versions lists them`, { field: 'version' });
    return { ...wire(v, tenant), live: v.version === ((await catalog.pipelines.current(tenant))?.version ?? 0) };
  });

  app.post('/v1/pipeline/test', async (request, reply) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    const body = objectBody(await request.jsonBody(), ['pipeline', 'version', 'events', 'sample']);
    if ((body.pipeline === undefined) === (body.version === undefined)) {
      throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'give either "pipeline" ({"steps": [...]}) or "version" (a stored version)', { field: 'pipeline' });
    }
    let doc = body.pipeline;
    if (body.version !== undefined) {
      const n = optInt(body, 'version', 1, 1_000_000_000)!;
      const v = await catalog.pipelines.get(tenant, n);
      if (!v) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `the pipeline has no version ${n}`, { field: 'version' });
      doc = { steps: v.steps };
    }
    // Compiled here too, so that a pipeline that does not compile is refused before the events are read.
    compileOrRefuse(doc, 'pipeline.steps');
    if ((body.events === undefined) === (body.sample === undefined)) {
      throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'give either "events" (a list of events) or "sample" ({"type": ..., "last": 100})', { field: 'events' });
    }
    let events: ExpressionEvent[];
    if (body.events !== undefined) {
      if (!Array.isArray(body.events) || body.events.length > MAX_TEST_EVENTS) {
        throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"events" must be a list of at most ${MAX_TEST_EVENTS} events`, { field: 'events' });
      }
      const t = now();
      events = body.events.map((e, i) => testEvent(e, i, t));
    } else {
      const sample = objectBody(body.sample, ['type', 'last']);
      const type = optString(sample, 'type', 200);
      if (!type) throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"sample.type" is required', { field: 'sample.type' });
      const last = optInt(sample, 'last', 1, MAX_TEST_EVENTS) ?? 100;
      const stored = await deps.reader.searchEvents({ tenant, type, from: 0, to: now() + 86_400_000, limit: last });
      events = stored.map((e) => ({ type: e.type, key: e.key, ts: e.ts, properties: JSON.parse(e.properties) as Record<string, unknown>, context: JSON.parse(e.context) as Record<string, unknown> }));
    }
    const salt = await catalog.pipelines.salt(tenant);
    // The results come as JSON text (made in the test's thread): sent as they are.
    return reply.type('application/json; charset=utf-8').send(`{"results":${await test(tenant, doc, events, salt)}}`);
  });
}
