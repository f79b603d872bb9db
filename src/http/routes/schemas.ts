import type { FastifyInstance } from 'fastify';
import { SluiceError } from '../../core/errors.js';
import { objectBody, optBool, optInt, optString } from '../fields.js';
import { authenticate } from '../auth.js';
import type { Catalog } from '../../ports/catalog.js';
import type { SchemaVersion } from '../../ports/schemas.js';
import { diff } from '../../schema/diff.js';
import { publishSchema, type PublishDeps } from '../../schema/publish.js';
import { enforcedSchema, enforcedVersion, heldVersions } from '../../schema/registry.js';

function wire(v: SchemaVersion) {
  return {
    type: v.type,
    version: v.version,
    owner: v.owner,
    schema: v.schema,
    created_at: new Date(v.createdAt).toISOString(),
    created_by: v.createdBy,
    forced_reason: v.forcedReason,
  };
}

async function versionOf(catalog: Catalog, tenant: string, type: string, version: number | undefined): Promise<SchemaVersion> {
  const all = await catalog.schemas.versions(tenant, type);
  if (all.length === 0) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no schema for type "${type}"`, { field: 'type' });
  const v = version === undefined ? all[all.length - 1] : all.find((s) => s.version === version);
  if (!v) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `schema "${type}" has versions 1 to ${all.length}, not ${version}`, { field: 'version' });
  return v;
}

/**
 * The schema registry over HTTP (admin keys, and schema keys for their team's types):
 * GET /v1/schemas, GET/PUT /v1/schemas/:type, GET /v1/schemas/:type/diff, GET /v1/audit.
 */
export function schemaRoutes(app: FastifyInstance, deps: PublishDeps): void {
  const { catalog } = deps;
  const readers = ['admin', 'schema'] as const;

  // `enforced_version`: the version ingest enforces, which is not the newest while the newest
  // is under a rollout of its enforcement or its rollout ended without a promote (rolled back,
  // aborted): then only the rollout's cohort met it (see heldVersions). Null: none is enforced.
  app.get('/v1/schemas', async (request) => {
    const { tenant } = await authenticate(catalog, request, readers);
    const held = heldVersions(await catalog.rollouts.list(tenant));
    const schemas = await Promise.all(
      (await catalog.schemas.list(tenant)).map(async (v) => {
        const enforced = await enforcedSchema(catalog.schemas, tenant, v.type, v, held.get(v.type));
        return { ...wire(v), enforced_version: enforced?.version ?? null };
      }),
    );
    return { schemas, settings: await catalog.settings(tenant) };
  });

  app.get<{ Params: { type: string }; Querystring: Record<string, string> }>('/v1/schemas/:type', async (request) => {
    const { tenant } = await authenticate(catalog, request, readers);
    const version = optInt(request.query, 'version', 1, 1_000_000);
    const v = await versionOf(catalog, tenant, request.params.type, version);
    const versions = await catalog.schemas.versions(tenant, request.params.type);
    const enforced = enforcedVersion(
      versions.map((s) => s.version),
      heldVersions(await catalog.rollouts.list(tenant)).get(request.params.type),
    );
    return {
      ...wire(v),
      enforced_version: enforced,
      versions: versions.map((s) => ({ version: s.version, owner: s.owner, created_at: new Date(s.createdAt).toISOString(), created_by: s.createdBy, forced_reason: s.forcedReason, enforced: s.version === enforced })),
    };
  });

  app.put<{ Params: { type: string } }>('/v1/schemas/:type', async (request, reply) => {
    const grant = await authenticate(catalog, request, readers);
    const body = objectBody(await request.jsonBody(), ['schema', 'owner', 'force', 'reason', 'dry_run', 'expected_version']);
    const report = await publishSchema(deps, grant, request.params.type, {
      schema: body.schema,
      owner: optString(body, 'owner', 63),
      force: optBool(body, 'force'),
      reason: optString(body, 'reason', 1000),
      dryRun: optBool(body, 'dry_run'),
      expectedVersion: optInt(body, 'expected_version', 0, 1_000_000),
    });
    return reply.code(report.published ? 201 : 200).send(report);
  });

  app.get<{ Params: { type: string }; Querystring: Record<string, string> }>('/v1/schemas/:type/diff', async (request) => {
    const { tenant } = await authenticate(catalog, request, readers);
    const to = await versionOf(catalog, tenant, request.params.type, optInt(request.query, 'to', 1, 1_000_000));
    const fromVersion = optInt(request.query, 'from', 0, 1_000_000) ?? to.version - 1;
    const from = fromVersion === 0 ? null : await versionOf(catalog, tenant, request.params.type, fromVersion);
    return { type: request.params.type, from: from?.version ?? 0, to: to.version, diff: diff(from?.schema ?? {}, to.schema) };
  });

  app.get<{ Querystring: Record<string, string> }>('/v1/audit', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    const limit = optInt(request.query, 'limit', 1, 1000) ?? 100;
    const entries = await catalog.auditLog(tenant, limit, optString(request.query, 'subject', 200));
    return { entries: entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() })) };
  });
}
