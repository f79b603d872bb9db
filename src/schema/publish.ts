import { SluiceError } from '../core/errors.js';
import { TEAM_NAME, type Catalog, type KeyGrant } from '../ports/catalog.js';
import type { SchemaVersion } from '../ports/schemas.js';
import { incompatibilities, type Incompatibility } from './compat.js';
import { diff, type Change } from './diff.js';
import { compile, enforcedSchema, heldVersions, newAjv, type SchemaRegistry, type SchemaViolation } from './registry.js';

/**
 * Publishing a schema version: who may, and what is checked before anything changes.
 *
 * 1. The key: an admin key, or a schema key of the team that owns the type (a type without
 *    a schema yet is owned by the team that publishes it first, unless events of that type
 *    are already stored: claiming a type with traffic needs an admin key).
 * 2. The schema compiles as JSON Schema 2020-12.
 * 3. Compatibility: the new version accepts everything the enforced one accepts (see
 *    compat.ts), and recent traffic: "N of the last M events of this type would fail". The
 *    enforced version is the newest unless that one is held by a rollout (under it, or rolled
 *    back: see heldVersions): a version published directly is enforced at once, so it is
 *    judged against the contract producers meet now, not against one that was rolled back.
 *    Either failing refuses the publish (409) unless it is forced with a reason.
 * 4. A dry run stops here and reports; otherwise the version is written with its audit
 *    entry (who, when, the diff), and every validator cache is dropped.
 */

export const TYPE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$/;
const TRAFFIC_SAMPLE = 1_000;

export interface PublishRequest {
  schema: unknown;
  owner?: string;
  force?: boolean;
  reason?: string;
  dryRun?: boolean;
  /** The version the publisher last saw (compare-and-set); defaults to the current one. */
  expectedVersion?: number;
}

export interface PublishReport {
  type: string;
  /** The version published, or the one that would be for a dry run. */
  version: number;
  owner: string;
  published: boolean;
  dry_run: boolean;
  compatible: boolean;
  incompatibilities: Incompatibility[];
  /**
   * The last `checked` stored events of the type: `failed` of them the previous version (or,
   * for a first version, no schema) accepts and this one rejects; `already_rejected` the
   * previous version rejects too (they do not count against this version).
   */
  /** `examples`: up to 5 distinct failures (path and message), each with the number of checked events that failed so. */
  traffic: { checked: number; failed: number; already_rejected: number; examples: (SchemaViolation & { count: number })[] };
  /** The version this one was judged against: the one ingest enforces now (null: none). */
  compared_with: number | null;
  diff: Change[];
  forced_reason: string | null;
}

export interface PublishDeps {
  catalog: Catalog;
  registry: SchemaRegistry;
  /** A sample of recent traffic; unavailable stores give no sample (the check says so). */
  recent: (tenant: string, type: string, limit: number) => Promise<string[]>;
}

function actorOf(grant: KeyGrant): string {
  return grant.team ? `${grant.keyId} (team ${grant.team})` : grant.keyId;
}

export async function publishSchema(deps: PublishDeps, grant: KeyGrant, type: string, req: PublishRequest): Promise<PublishReport> {
  if (!TYPE_NAME.test(type)) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'the event type must be 1-200 letters, digits, "_", ".", ":", "/" or "-"', { field: 'type' });
  }
  const tenant = grant.tenant;
  const latest = await deps.catalog.schemas.latest(tenant, type);
  const owner = ownerOf(grant, latest, req.owner);
  if (req.force && !req.reason?.trim()) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'forcing an incompatible schema needs a reason ("reason"), kept in the audit log', { field: 'reason' });
  }
  const version = (latest?.version ?? 0) + 1;
  const compiled = compile(newAjv(), req.schema, version, owner, true);
  const schema = req.schema as Record<string, unknown>;
  const baseline = await enforcedSchema(deps.catalog.schemas, tenant, type, latest, heldVersions(await deps.catalog.rollouts.list(tenant)).get(type));
  const found = baseline ? incompatibilities(baseline.schema, schema) : [];

  const traffic: PublishReport['traffic'] = { checked: 0, failed: 0, already_rejected: 0, examples: [] };
  const sample = await deps.recent(tenant, type, TRAFFIC_SAMPLE).catch(() => null);
  // Traffic that is not stored counts too: events held while the tenant is paused, or
  // dead-lettered (an unknown type under unknown_types: dead-letter) are the type's traffic.
  const claiming = !latest && grant.scope !== 'admin' && !req.dryRun;
  const unstored = claiming && sample?.length === 0 ? (await deps.catalog.deadLetters.list(tenant, { type, status: ['open', 'held'] }, 1)).entries.length : 0;
  if (claiming && (sample?.length !== 0 || unstored > 0)) {
    // A schema key claims the types its team starts; one that already flows belongs to other
    // producers too, and a claim could dead-letter all of it.
    const seen =
      sample === null
        ? 'its recent traffic cannot be checked (the store is unavailable)'
        : unstored > 0
          ? 'it has traffic held or dead-lettered (sluice dlq list --type to see it)'
          : `it has traffic (${sample.length}${sample.length === TRAFFIC_SAMPLE ? '+' : ''} recent events)`;
    throw new SluiceError('SLUICE_ERR_FORBIDDEN', `"${type}" has no schema yet and ${seen}: claiming a type with traffic needs an admin key (a dry run first shows what would fail: dry_run, or sluice schema check)`, { field: 'Authorization' });
  }
  // Only what this version changes counts: an event the previous version rejects (stored
  // before it, or under a forced publish) is not one that this version would start to reject.
  const previous = baseline ? compile(newAjv(), baseline.schema, baseline.version, baseline.owner) : null;
  for (const text of sample ?? []) {
    traffic.checked++;
    const properties = JSON.parse(text) as unknown;
    if (previous?.check(properties)) {
      traffic.already_rejected++;
      continue;
    }
    const v = compiled.check(properties);
    if (v) {
      traffic.failed++;
      // Distinct failures, each with how many of the checked events failed so (four identical
      // lines for four events told less than one with its count).
      const same = traffic.examples.find((x) => x.path === v.path && x.message === v.message);
      if (same) same.count++;
      else if (traffic.examples.length < 5) traffic.examples.push({ ...v, count: 1 });
    }
  }
  const report: PublishReport = {
    type,
    version,
    owner,
    published: false,
    dry_run: req.dryRun === true,
    compatible: found.length === 0 && traffic.failed === 0,
    incompatibilities: found,
    traffic,
    compared_with: baseline?.version ?? null,
    diff: diff(baseline?.schema ?? {}, schema),
    forced_reason: req.force ? req.reason!.trim() : null,
  };
  if (req.dryRun) return report;
  if (!report.compatible && !req.force) {
    const why = found.length > 0 ? `${found.length} incompatible change${found.length > 1 ? 's' : ''} (first: ${found[0]!.path} ${found[0]!.message})` : '';
    const seen = traffic.failed > 0 ? `${traffic.failed} of the last ${traffic.checked} "${type}" events would fail` : '';
    throw new SluiceError(
      'SLUICE_ERR_INCOMPATIBLE_SCHEMA',
      `version ${version} of "${type}" would reject events that version ${baseline?.version ?? 0}${baseline && latest && baseline.version !== latest.version ? ' (the one enforced; ' + String(latest.version) + ' is held by a rollout)' : ''} accepts: ${[why, seen].filter(Boolean).join('; ')}. ` +
        'Make the change compatible, or publish with force and a reason (sluice schema push --force --reason TEXT)',
      { field: 'schema', details: report },
    );
  }
  const expected = req.expectedVersion ?? latest?.version ?? 0;
  await deps.catalog.schemas.publish(tenant, type, { schema, owner, actor: actorOf(grant), expectedVersion: expected, forcedReason: report.forced_reason, diff: report.diff });
  deps.registry.invalidate();
  return { ...report, published: true };
}

/** The owner of the new version, or 403 when this key may not publish it. */
function ownerOf(grant: KeyGrant, latest: SchemaVersion | null, requested: string | undefined): string {
  if (grant.scope === 'admin') {
    const owner = requested ?? latest?.owner;
    if (!owner) throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'the first version of a schema needs an owner: the team responsible for it ("owner")', { field: 'owner' });
    if (!TEAM_NAME.test(owner)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'the owner must be a team name: 1-63 letters, digits, ".", "-" or "_"', { field: 'owner' });
    return owner;
  }
  const team = grant.team!;
  if (latest && latest.owner !== team) {
    throw new SluiceError('SLUICE_ERR_FORBIDDEN', `the schema is owned by team "${latest.owner}"; this key is team "${team}"'s. Ask them, or use an admin key`, { field: 'Authorization' });
  }
  if (requested !== undefined && requested !== team) {
    throw new SluiceError('SLUICE_ERR_FORBIDDEN', `a schema key of team "${team}" cannot hand the schema to "${requested}"; use an admin key`, { field: 'owner' });
  }
  return team;
}
