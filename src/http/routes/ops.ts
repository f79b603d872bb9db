import type { FastifyInstance } from 'fastify';
import { coerceError, SluiceError } from '../../core/errors.js';
import { objectBody, optBool, optInt, optString, optStrings, optTime, type Fields } from '../fields.js';
import { authenticate } from '../auth.js';
import type { Logger } from '../../obs/logger.js';
import type { TenantQuota, TenantSettings, UnknownTypes } from '../../ports/catalog.js';
import type { DeadLetterFilter, DeadLetterStatus } from '../../ports/dead-letters.js';
import type { StoreReader } from '../../ports/reader.js';
import { wireBackfill, wireDeadLetter } from '../wire.js';
import { dryRunAll, replay, type ReplayDeps } from '../../ops/replay.js';
import { resolveEmptied, withStates, type GroupView } from '../../ops/dlq-groups.js';
import { GROUP_STATUSES, type GroupStatus } from '../../core/dlq-lifecycle.js';
import { compileOrRefuse } from '../../transform/versions.js';

const iso = (ms: number) => new Date(ms).toISOString();
const STATUSES: readonly DeadLetterStatus[] = ['open', 'held', 'replayed', 'discarded'];
const FILTER_FIELDS = ['id', 'type', 'reason', 'group', 'from', 'to', 'status'] as const;


/** The quota fields of PATCH /v1/tenant, and the setting each is kept under. */
const QUOTA_FIELDS = [['events_per_second', 'eventsPerSecond'], ['bytes_per_second', 'bytesPerSecond'], ['backlog', 'backlog']] as const;

/** Quota fields of a body (`events_per_second`, `bytes_per_second`, `backlog`; 0 = unlimited, null = the default). */
export function quotaPatch(f: Fields): TenantQuota | null {
  const out: TenantQuota = {};
  let any = false;
  for (const [field, key] of QUOTA_FIELDS) {
    if (!(field in f)) continue;
    any = true;
    // null: back to the configured default (the key disappears when stored).
    out[key] = f[field] === null ? undefined : optInt(f, field, 0, 1e12);
  }
  return any ? out : null;
}

/**
 * Refuses (403) a tenant admin's quota change past its ceiling. The ceiling is the operator's
 * for that tenant (`sluice tenant set` on the server) where there is one, and otherwise the
 * process's configured default (`quotas.*`, when not 0): under either, the admin key may lower
 * the quota, not raise it past the ceiling nor make it unlimited (0). Back to the default
 * (null) is refused only under an operator's ceiling (the default is the ceiling otherwise).
 * Without both, the quota is the tenant's to set.
 */
export function checkCeiling(patch: TenantQuota, ceiling: TenantQuota | undefined, defaults: TenantQuota = {}, tenant = 'NAME'): void {
  for (const [field, key] of QUOTA_FIELDS) {
    if (!(key in patch)) continue;
    const operator = ceiling?.[key] || 0;
    const c = operator || defaults[key] || 0;
    if (!c) continue;
    const v = patch[key];
    if (v === undefined && !operator) continue;
    if (v === undefined || v === 0 || v > c) {
      const flag = `--${field.replace(/_/g, '-')}`;
      const setting = `quotas.${key}`;
      throw new SluiceError(
        'SLUICE_ERR_FORBIDDEN',
        operator
          ? `the operator set ${field} at most ${c} for this tenant: its admin key may lower it, not raise it past that (or make it unlimited or the default); ask the operator (sluice tenant set ${tenant} ${flag} N on the server)`
          : `the server's default ${field} is ${c} (${setting} in the configuration): a tenant's admin key may lower its own, not raise it past that or make it unlimited; ask the operator (sluice tenant set ${tenant} ${flag} N on the server)`,
        { field },
      );
    }
  }
}

/**
 * A backfill's `rate` (events/s; 0 or absent: unthrottled). Backfills and view builds run one
 * at a time per process, a throttled one sleeping between its chunks while holding the queue:
 * a rate of 1 held every other tenant's builds for hours. So a rate is at least
 * MIN_BACKFILL_RATE.
 */
const MIN_BACKFILL_RATE = 1_000;
function backfillRate(body: Record<string, unknown>): number {
  const rate = optInt(body, 'rate', 0, 100_000_000) ?? 0;
  if (rate > 0 && rate < MIN_BACKFILL_RATE) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"rate" must be 0 (unthrottled) or at least ${MIN_BACKFILL_RATE} events/s: backfills run one at a time, and a slower one would hold every other backfill and view build`, { field: 'rate' });
  }
  return rate;
}

/** A dead-letter filter from query-string or body fields. */
function filterOf(f: Fields, now: number): DeadLetterFilter {
  const status = optStrings(f, 'status', 4);
  if (status?.some((s) => !STATUSES.includes(s as DeadLetterStatus))) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"status" (an entry's) must be among ${STATUSES.join(', ')}; a group's own status (${GROUP_STATUSES.join(', ')}) is filtered with "group_status" (sluice dlq groups --group-status)`, { field: 'status' });
  }
  const filter: DeadLetterFilter = {};
  const ids = optStrings(f, 'id', 1000);
  if (ids) filter.ids = ids;
  const type = optString(f, 'type', 200);
  if (type !== undefined) filter.type = type;
  const reason = optString(f, 'reason', 64);
  if (reason !== undefined) filter.reason = reason;
  const group = optString(f, 'group', 64);
  if (group !== undefined) filter.signature = group;
  const from = optTime(f, 'from', now);
  if (from !== undefined) filter.from = from;
  const to = optTime(f, 'to', now);
  if (to !== undefined) filter.to = to;
  if (status) filter.status = status as DeadLetterStatus[];
  return filter;
}

/**
 * Dead letters, replay and the tenant's processing state over HTTP (admin key):
 * GET /v1/dlq, GET /v1/dlq/groups, GET|PATCH /v1/dlq/groups/:signature, GET /v1/dlq/:idempotency_key, POST /v1/dlq/replay,
 * POST /v1/dlq/discard, GET /v1/tenant, PATCH /v1/tenant, POST /v1/tenant/pause|resume.
 */
export function opsRoutes(app: FastifyInstance, deps: ReplayDeps & { reader: StoreReader; logger?: Logger; /** The configured per-tenant quotas (`quotas.*`): a ceiling where the operator set none. */ quotaDefaults?: TenantQuota }): void {
  const { catalog } = deps;
  const dlq = catalog.deadLetters;

  app.post('/v1/backfills', async (request, reply) => {
    const { tenant, keyId } = await authenticate(catalog, request, 'admin');
    const body = objectBody(await request.jsonBody(), ['view', 'from', 'to', 'rate']);
    const view = optString(body, 'view', 100);
    if (!view) throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'name the view to rebuild ("view"), e.g. "counts_1m"', { field: 'view' });
    const now = Date.now();
    const state = await deps.reader.startBackfill({
      view,
      tenant,
      from: optTime(body, 'from', now) ?? null,
      to: optTime(body, 'to', now) ?? null,
      rate: backfillRate(body),
    });
    await catalog.audit({ tenant, actor: keyId, action: 'backfill.start', subject: view, detail: { id: state.id, from: state.from, to: state.to } });
    return reply.code(202).send(wireBackfill(state));
  });

  app.get('/v1/backfills', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    return { backfills: (await deps.reader.backfills(tenant)).map((s) => wireBackfill(s)) };
  });

  app.get<{ Params: { id: string } }>('/v1/backfills/:id', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    const s = (await deps.reader.backfills(tenant)).find((b) => b.id === request.params.id);
    if (!s) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no backfill "${request.params.id.slice(0, 40)}"`, { field: 'id' });
    return wireBackfill(s);
  });

  app.get<{ Querystring: Fields }>('/v1/dlq', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    const q = objectBody(request.query, [...FILTER_FIELDS, 'limit', 'cursor']);
    const page = await dlq.list(tenant, filterOf(q, Date.now()), optInt(q, 'limit', 1, 1000) ?? 100, optString(q, 'cursor', 200));
    return { entries: page.entries.map(wireDeadLetter), cursor: page.cursor };
  });

  app.get<{ Querystring: Fields }>('/v1/dlq/groups', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    const q = objectBody(request.query, [...FILTER_FIELDS, 'limit', 'group_status']);
    // `group_status`: the groups' own lifecycle (open, acknowledged, resolved, ignored); `status` is their entries'.
    const groupStatus = optStrings(q, 'group_status', 4);
    if (groupStatus?.some((s) => !GROUP_STATUSES.includes(s as GroupStatus))) {
      throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"group_status" must be among ${GROUP_STATUSES.join(', ')}`, { field: 'group_status' });
    }
    const filter = filterOf(q, Date.now());
    // A resolved group's entries were all replayed or discarded: looked for among every status.
    if (groupStatus && !filter.status) filter.status = [...STATUSES];
    const groups = await withStates(catalog, tenant, await dlq.groups(tenant, filter, optInt(q, 'limit', 1, 500) ?? 50));
    return { groups: groups.filter((g) => !groupStatus || groupStatus.includes(g.state.status)).map(wireGroup) };
  });

  // One group, whatever its entries' statuses (a resolved group's entries were all replayed).
  app.get<{ Params: { signature: string } }>('/v1/dlq/groups/:signature', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    const signature = request.params.signature;
    const [group] = await withStates(catalog, tenant, await dlq.groups(tenant, { signature, status: [...STATUSES] }, 1));
    if (!group) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no dead letters with signature "${signature.slice(0, 100)}"; GET /v1/dlq/groups lists them`, { field: 'signature' });
    return wireGroup(group);
  });

  app.patch<{ Params: { signature: string } }>('/v1/dlq/groups/:signature', async (request) => {
    const { tenant, keyId } = await authenticate(catalog, request, 'admin');
    const body = objectBody(await request.jsonBody(), ['status', 'owner', 'note']);
    const status = optString(body, 'status', 20);
    if (status !== undefined && !GROUP_STATUSES.includes(status as GroupStatus)) {
      throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"status" must be one of ${GROUP_STATUSES.join(', ')}`, { field: 'status' });
    }
    if (status === undefined && body.owner === undefined && body.note === undefined) {
      throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'give "status", "owner" or "note"', { field: 'status' });
    }
    const signature = request.params.signature;
    if ((await dlq.list(tenant, { signature, status: ['open', 'held', 'replayed', 'discarded'] }, 1)).entries.length === 0) {
      throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no dead letters with signature "${signature.slice(0, 100)}"; GET /v1/dlq/groups lists them`, { field: 'signature' });
    }
    const owner = body.owner === null ? null : optString(body, 'owner', 100);
    const state = await dlq.updateGroup(tenant, signature, { status: status as GroupStatus | undefined, ...(body.owner === undefined ? {} : { owner: owner ?? null }), note: optString(body, 'note', 2000) ?? null }, keyId);
    return { group: signature, status: state.status, owner: state.owner, history: state.history.map((h) => ({ ...h, at: iso(h.at) })) };
  });

  app.get<{ Params: { id: string } }>('/v1/dlq/:id', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    const row = await dlq.get(tenant, request.params.id);
    if (!row) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no dead letter with idempotency key "${request.params.id.slice(0, 200)}"`, { field: 'idempotency_key' });
    return wireDeadLetter(row);
  });

  app.post('/v1/dlq/replay', async (request) => {
    const { tenant, keyId } = await authenticate(catalog, request, 'admin');
    const body = objectBody(await request.jsonBody(), [...FILTER_FIELDS, 'limit', 'cursor', 'rate', 'dry_run', 'patch']);
    const filter = filterOf(body, Date.now());
    // A patch: steps as in the pipeline document, applied to each entry before re-validation.
    const patch = body.patch === undefined || body.patch === null ? null : { transform: compileOrRefuse(body.patch, 'patch.steps'), salt: await catalog.pipelines.salt(tenant) };
    const rate = optInt(body, 'rate', 0, 1_000_000) ?? 0;
    const limit = optInt(body, 'limit', 1, 10_000) ?? 1_000;
    const cursor = optString(body, 'cursor', 200) ?? null;
    // A dry run predicts over the whole selection, not one page.
    if (optBool(body, 'dry_run') === true) return dryRunAll(deps, tenant, { filter, rate, patch });
    const touched = new Set<string>();
    const report = await replay(deps, tenant, { filter, limit, cursor, rate, dryRun: false, patch, onReplayed: (sig) => touched.add(sig) });
    if (report.matched > 0) {
      const detail = { filter, replayed: report.replayed, failed: report.failed, ...(patch ? { patch: body.patch } : {}) };
      await catalog.audit({ tenant, actor: keyId, action: 'dlq.replay', subject: filter.signature ?? filter.type ?? '*', detail });
    }
    // A group whose entries all replayed is resolved.
    return { ...report, resolved_groups: await resolveEmptied(catalog, tenant, touched, keyId) };
  });

  app.post('/v1/dlq/discard', async (request) => {
    const { tenant, keyId } = await authenticate(catalog, request, 'admin');
    const body = objectBody(await request.jsonBody(), [...FILTER_FIELDS, 'limit', 'reason_for_discard']);
    const why = optString(body, 'reason_for_discard', 1000);
    if (!why) throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'say why the entries are discarded ("reason_for_discard"); it is kept in the audit log', { field: 'reason_for_discard' });
    const filter = filterOf(body, Date.now());
    if (Object.keys(filter).length === 0) {
      throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'name what to discard: "id", "group", "type", "reason", "from" or "to"', { field: 'body' });
    }
    // The groups it empties are resolved, as a replay's are: their signatures, read before.
    const signatures = new Set<string>();
    for (let cursor: string | null = null, pages = 0; pages < 100; pages++) {
      const page: Awaited<ReturnType<typeof dlq.list>> = await dlq.list(tenant, { ...filter, status: ['open', 'held'] }, 1000, cursor);
      for (const e of page.entries) signatures.add(e.signature);
      cursor = page.cursor;
      if (cursor === null) break;
    }
    const discarded = await dlq.discard(tenant, filter, optInt(body, 'limit', 1, 1_000_000) ?? 10_000);
    await catalog.audit({ tenant, actor: keyId, action: 'dlq.discard', subject: filter.signature ?? filter.type ?? '*', detail: { filter, discarded, reason: why } });
    return { discarded, resolved_groups: await resolveEmptied(catalog, tenant, signatures, keyId) };
  });

  app.get('/v1/tenant', async (request) => {
    const { tenant } = await authenticate(catalog, request, 'admin');
    return { tenant, settings: await catalog.settings(tenant) };
  });

  app.patch('/v1/tenant', async (request) => {
    const { tenant, keyId } = await authenticate(catalog, request, 'admin');
    const body = objectBody(await request.jsonBody(), ['unknown_types', 'events_per_second', 'bytes_per_second', 'backlog']);
    const unknownTypes = optString(body, 'unknown_types', 20);
    if (unknownTypes !== undefined && !['accept', 'dead-letter', 'reject'].includes(unknownTypes)) {
      throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"unknown_types" must be accept, dead-letter or reject', { field: 'unknown_types' });
    }
    const patch: Partial<TenantSettings> = unknownTypes ? { unknownTypes: unknownTypes as UnknownTypes } : {};
    const quota = quotaPatch(body);
    if (quota) {
      const current = await catalog.settings(tenant);
      checkCeiling(quota, current.quotaCeiling, deps.quotaDefaults, tenant);
      patch.quota = { ...current.quota, ...quota };
    }
    const settings = await catalog.updateSettings(tenant, patch, keyId);
    deps.schemas.invalidate();
    return { tenant, settings };
  });

  app.post('/v1/tenant/pause', async (request) => {
    const { tenant, keyId } = await authenticate(catalog, request, 'admin');
    // No body pauses with the default reason; any body is parsed and checked before anything changes.
    const body = objectBody(request.rawBytes() === 0 ? {} : await request.jsonBody(), ['reason']);
    const reason = optString(body, 'reason', 1000) ?? 'paused by an operator';
    const settings = await catalog.updateSettings(tenant, { paused: { since: Date.now(), reason } }, keyId);
    deps.schemas.invalidate();
    return { tenant, settings };
  });

  app.post('/v1/tenant/resume', async (request) => {
    const { tenant, keyId } = await authenticate(catalog, request, 'admin');
    const settings = await catalog.updateSettings(tenant, { paused: null, resumedAt: Date.now() }, keyId);
    deps.schemas.invalidate();
    const held = (await dlq.counts(tenant)).held ?? 0;
    // The held events go back through the live path, in the background, a page at a time.
    if (held > 0) void replayHeld(deps, tenant);
    return { tenant, settings, held };
  });
}

/** How long after a resume the held events are swept once more (see replayHeld). */
const SWEEP_AGAIN_MS = 5_000;

/**
 * Replays a resumed tenant's held events. A worker that confirmed the pause just before the
 * resume may write its held events just after the first sweep listed them; a second sweep
 * a few seconds later takes those too.
 */
async function replayHeld(deps: ReplayDeps & { logger?: Logger }, tenant: string): Promise<void> {
  let replayed = 0;
  try {
    for (const delay of [0, SWEEP_AGAIN_MS]) {
      if (delay > 0) await new Promise((r) => setTimeout(r, delay).unref());
      let cursor: string | null = null;
      do {
        const r = await replay(deps, tenant, { filter: { status: ['held'] }, limit: 1_000, cursor, rate: 0, dryRun: false });
        replayed += r.replayed + r.duplicates;
        cursor = r.cursor;
      } while (cursor !== null);
    }
    deps.logger?.info({ tenant, replayed }, 'tenant resumed: held events replayed');
  } catch (e: unknown) {
    deps.logger?.error({ tenant, err: coerceError(e).message, replayed }, 'replaying held events failed; run `sluice dlq replay --status held` to finish');
  }
}

/** A dead-letter group on the wire (GET /v1/dlq/groups and /v1/dlq/groups/:signature). */
function wireGroup({ group: g, state, owner }: GroupView) {
  return {
    group: g.signature,
    status: state.status,
    owner,
    history: state.history.map((h) => ({ ...h, at: iso(h.at) })),
    reason: g.reason,
    path: g.path,
    template: g.template,
    count: g.count,
    types: g.types,
    first_seen: iso(g.firstSeen),
    last_seen: iso(g.lastSeen),
    samples: g.samples.map(wireDeadLetter),
  };
}
