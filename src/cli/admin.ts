import fs from 'node:fs';
import { readJsonFile } from './json-file.js';
import { SluiceError } from '../core/errors.js';
import { formatDiff, type Change } from '../schema/diff.js';
import { generateTypes } from '../schema/typegen.js';
import type { PublishReport } from '../schema/publish.js';
import type { ReplayReport } from '../ops/replay.js';
import { callJson, HttpError } from './http-client.js';
import { StatusLine } from './progress.js';

/**
 * The operator's commands that talk to a running server with an admin (or schema) key:
 * `sluice schema …`, `sluice dlq …`, `sluice tenant pause|resume`.
 */

export interface Target {
  url: string;
  key: string;
  json: boolean;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

type Query = Record<string, string | undefined>;

function qs(q: Query): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
}

async function call<T>(t: Target, method: string, path: string, payload?: unknown): Promise<T> {
  return (await callJson(method, `${t.url.replace(/\/$/, '')}${path}`, t.key, payload, { maxAttempts: 3 })).body as T;
}

function print(t: Target, value: unknown, human: () => string): void {
  t.out.write((t.json ? JSON.stringify(value, null, 2) : human()) + '\n');
}

function readSchema(file: string | undefined): unknown {
  return readJsonFile(file, 'name the schema file: sluice schema push TYPE FILE.json');
}

/** After a check that found the version incompatible: the three ways on, each with its command. */
function incompatibleNextStep(r: PublishReport, file: string): string {
  return [
    'next, one of:',
    '  make the change compatible (a new property optional, a type widened) and check again;',
    `  take it live on a share of traffic first: sluice rollout create ROLLOUT.json with {"change": {"schema": {"type": "${r.type}", "version": ${r.version}}}, …} (one schema rollout at a time per tenant: sluice rollout list), then push it with --force;`,
    `  publish it now, refusing what it refuses: sluice schema push ${r.type} ${file} --force --reason TEXT`,
  ].join('\n');
}

function describePublish(r: PublishReport): string {
  const lines = [
    r.published
      ? `published "${r.type}" version ${r.version} (owner ${r.owner})`
      : `"${r.type}" version ${r.version} (owner ${r.owner}): ${r.dry_run ? 'dry run' : 'not published'}, nothing changed`,
    r.compared_with === null
      ? 'compatible: no version enforced yet to compare with'
      : `compatible with version ${r.compared_with} (the one enforced): ${r.incompatibilities.length === 0 ? 'yes' : 'no'}`,
    ...r.incompatibilities.map((i) => `  ${i.path}: ${i.message}`),
    r.traffic.checked === 0
      ? 'recent traffic: no stored events of this type to check'
      : `recent traffic: ${r.traffic.failed} of the last ${r.traffic.checked} events would fail` +
        (r.traffic.already_rejected ? ` (${r.traffic.already_rejected} more fail the enforced version already)` : ''),
    ...r.traffic.examples.map((v) => `  ${v.path}: ${v.message}${v.count > 1 ? ` (${v.count} events)` : ''}`),
    ...(r.forced_reason ? [`forced: ${r.forced_reason}`] : []),
    'changes:',
    formatDiff(r.diff).replace(/^/gm, '  '),
  ];
  return lines.join('\n');
}

export async function schemaCommand(t: Target, sub: string | undefined, args: string[], flags: Query & { force?: boolean; dryRun?: boolean }): Promise<number> {
  const type = args[0];
  const need = () => {
    if (!type) throw new SluiceError('SLUICE_ERR_CONFIG', `sluice schema ${sub} needs the event TYPE`);
    return encodeURIComponent(type);
  };
  switch (sub) {
    case 'list': {
      const r = await call<{ schemas: { type: string; version: number; owner: string; created_at: string; enforced_version: number | null }[] }>(t, 'GET', '/v1/schemas');
      // The newest version is not the enforced one while its rollout runs, or after the rollout ended without a promote.
      const enforced = (s: (typeof r.schemas)[number]) => (s.enforced_version === s.version ? '' : `  (enforced: ${s.enforced_version === null ? 'none' : `v${s.enforced_version}`}; v${s.version} is under a rollout, or its rollout was rolled back or aborted: sluice rollout list)`);
      print(t, r, () => (r.schemas.length === 0 ? 'no schemas yet' : r.schemas.map((s) => `${s.type.padEnd(32)} v${String(s.version).padEnd(5)} ${s.owner.padEnd(20)} ${s.created_at}${enforced(s)}`).join('\n')));
      return 0;
    }
    case 'show': {
      const r = await call<{ schema: unknown }>(t, 'GET', `/v1/schemas/${need()}${qs({ version: flags.version })}`);
      print(t, r, () => JSON.stringify(r, null, 2));
      return 0;
    }
    case 'diff': {
      const r = await call<{ from: number; to: number; diff: Change[] }>(t, 'GET', `/v1/schemas/${need()}/diff${qs({ from: flags.from, to: flags.to })}`);
      print(t, r, () => `"${type}" v${r.from} → v${r.to}\n${formatDiff(r.diff)}`);
      return 0;
    }
    case 'push':
    case 'check': {
      const body = {
        schema: readSchema(args[1]),
        owner: flags.owner,
        force: flags.force || undefined,
        reason: flags.reason,
        dry_run: sub === 'check' || flags.dryRun || undefined,
      };
      try {
        const r = await call<PublishReport>(t, 'PUT', `/v1/schemas/${need()}`, body);
        print(t, r, () => (r.compatible || r.published ? describePublish(r) : `${describePublish(r)}\n\n${incompatibleNextStep(r, args[1] ?? 'FILE.json')}`));
        return r.compatible || r.published ? 0 : 1;
      } catch (e: unknown) {
        if (!(e instanceof HttpError)) throw e;
        const details = (e.body as { details?: PublishReport } | null)?.details;
        if (!details) throw e;
        print(t, e.body, () => `${describePublish(details)}\n\nrefused: ${e.message}`);
        return 1;
      }
    }
    case 'types': {
      const r = await call<{ schemas: { type: string; version: number; schema: unknown }[] }>(t, 'GET', '/v1/schemas');
      const text = generateTypes(r.schemas, `Event types of ${t.url}, ${new Date().toISOString()}`);
      if (type) {
        fs.writeFileSync(type, text);
        t.out.write(`wrote ${r.schemas.length} event types to ${type}\n`);
      } else t.out.write(text);
      return 0;
    }
    default:
      throw new SluiceError('SLUICE_ERR_CONFIG', `unknown command "schema ${sub ?? ''}"; use push, check, list, show, diff or types`);
  }
}

interface WireDeadLetter {
  idempotency_key: string;
  type: string;
  reason: string;
  message: string;
  status: string;
  attempts: number;
  last_seen: string;
}

function filterQuery(f: Query): Query {
  return { id: f.id, type: f.type, reason: f.reason, group: f.group, from: f.from, to: f.to, status: f.status };
}

export async function dlqCommand(t: Target, sub: string | undefined, args: string[], flags: Query & { dryRun?: boolean }): Promise<number> {
  switch (sub) {
    case 'list': {
      const r = await call<{ entries: WireDeadLetter[]; cursor: string | null }>(t, 'GET', `/v1/dlq${qs({ ...filterQuery(flags), limit: flags.limit, cursor: flags.cursor })}`);
      print(t, r, () =>
        [
          ...r.entries.map((e) => `${e.last_seen}  ${e.status.padEnd(9)} ${e.reason.padEnd(17)} ${e.type.padEnd(20)} ${e.idempotency_key}  ${e.message}`),
          r.entries.length === 0 ? 'no dead letters match' : r.cursor ? `more: --cursor ${r.cursor}` : `${r.entries.length} shown`,
        ].join('\n'),
      );
      return 0;
    }
    case 'show': {
      if (!args[0]) throw new SluiceError('SLUICE_ERR_CONFIG', 'sluice dlq show needs the IDEMPOTENCY_KEY');
      const r = await call<unknown>(t, 'GET', `/v1/dlq/${encodeURIComponent(args[0])}`);
      print(t, r, () => JSON.stringify(r, null, 2));
      return 0;
    }
    case 'groups': {
      const r = await call<{ groups: { group: string; status: string; owner: string | null; reason: string; path: string; template: string; count: number; types: string[] }[] }>(
        t, 'GET', `/v1/dlq/groups${qs({ ...filterQuery(flags), limit: flags.limit, group_status: flags.groupStatus })}`,
      );
      // FIELD and MESSAGE vary in length: padded to the longest, so that the header sits over them.
      const pathWidth = Math.max(5, ...r.groups.map((g) => (g.path || '-').length));
      const templateWidth = Math.max(7, ...r.groups.map((g) => g.template.length));
      const row = (group: string, count: string, status: string, owner: string, reason: string, path: string, template: string, types: string) =>
        `${group.padEnd(16)}  ${count.padStart(8)}  ${status.padEnd(12)} ${owner.padEnd(12)} ${reason.padEnd(17)} ${path.padEnd(pathWidth)}  ${template.padEnd(templateWidth)}  ${types}`;
      print(t, r, () =>
        r.groups.length === 0
          ? flags.status || flags.groupStatus
            ? 'no dead-letter groups match'
            : 'no groups with open dead letters (replayed and discarded ones: --status replayed,discarded; resolved groups: --group-status resolved)'
          : [
              // Which entries are counted: the open ones unless a filter says otherwise (--group-status counts them all).
              row('GROUP', flags.status ? flags.status.toUpperCase() : flags.groupStatus ? 'ENTRIES' : 'OPEN', 'STATUS', 'OWNER', 'REASON', 'FIELD', 'MESSAGE', 'TYPES'),
              ...r.groups.map((g) => row(g.group, String(g.count), g.status, g.owner ?? '-', g.reason, g.path || '-', g.template, `[${g.types.join(', ')}]`)),
            ].join('\n'),
      );
      return 0;
    }
    case 'group': {
      // A group's lifecycle: open → acknowledged → resolved | ignored (PATCH /v1/dlq/groups/:signature).
      if (!args[0]) throw new SluiceError('SLUICE_ERR_CONFIG', 'sluice dlq group needs the group SIGNATURE (sluice dlq groups lists them)');
      const body = { ...(flags.set ? { status: flags.set } : {}), ...(flags.owner !== undefined ? { owner: flags.owner } : {}), ...(flags.note ? { note: flags.note } : {}) };
      type Group = { group: string; status: string; owner: string | null; history: { at: string; actor: string; status: string; note: string | null }[]; count?: number; reason?: string; path?: string; template?: string };
      const path = `/v1/dlq/groups/${encodeURIComponent(args[0])}`;
      // Without --set, --owner or --note: show the group and its history.
      const r = Object.keys(body).length === 0 ? await call<Group>(t, 'GET', path) : await call<Group>(t, 'PATCH', path, body);
      print(t, r, () =>
        [
          `${r.group}: ${r.status}, owner ${r.owner ?? '(the default)'}`,
          ...(r.count === undefined ? [] : [`  ${r.count} entries, ${r.reason} ${r.path || '-'}  ${r.template}`]),
          ...r.history.map((h) => `  ${h.at}  ${h.actor}  ${h.status}${h.note ? `  ${h.note}` : ''}`),
        ].join('\n'),
      );
      return 0;
    }
    case 'replay': {
      const limit = Number(flags.limit ?? 0) || Infinity;
      const total: Omit<ReplayReport, 'cursor' | 'dry_run' | 'failures' | 'would_pass' | 'would_fail'> = { matched: 0, replayed: 0, duplicates: 0, failed: 0, skipped: 0 };
      const failures: ReplayReport['failures'] = [];
      let cursor: string | null = null;
      // --patch FILE.json: transform steps ({"steps": [...]}) applied to each entry before re-validation.
      const patch = flags.patch === undefined ? undefined : readSchema(flags.patch);
      let wouldFail: ReplayReport['would_fail'] = undefined;
      let pages = 0;
      const status = new StatusLine(t.err);
      do {
        const page = Math.min(1_000, limit - total.matched);
        const r: ReplayReport = await call<ReplayReport>(t, 'POST', '/v1/dlq/replay', {
          ...filterQuery(flags),
          id: flags.id?.split(','),
          limit: page,
          cursor,
          rate: flags.rate === undefined ? undefined : Number(flags.rate),
          dry_run: flags.dryRun || undefined,
          patch,
        });
        for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += r[k];
        if (r.would_fail) wouldFail = r.would_fail;
        failures.push(...r.failures.slice(0, Math.max(0, 20 - failures.length)));
        cursor = r.cursor;
        // Progress only while pages remain: the summary below says the rest.
        const more = cursor !== null && total.matched < limit;
        if (!t.json && (more || pages > 0)) {
          const text = `${flags.dryRun ? 'would replay' : 'replayed'} ${total.replayed + total.duplicates} of ${total.matched} seen, ${total.failed} ${flags.dryRun ? 'would fail' : 'failed again'}`;
          if (more) status.show(text);
          else status.end(text);
        }
        pages++;
      } while (cursor !== null && total.matched < limit);
      // In a dry run `replayed` counts what would be replayed (kept for scripts); `would_pass` says so by name.
      const dry = flags.dryRun === true;
      print(t, { ...total, failures, dry_run: dry, ...(dry ? { would_pass: total.replayed, would_fail: wouldFail ?? [] } : {}) }, () =>
        [
          dry
            ? `dry run: would replay ${total.replayed + total.duplicates}, would fail ${total.failed}, changed meanwhile ${total.skipped}`
            : `replayed ${total.replayed + total.duplicates}, failed again ${total.failed}, changed meanwhile ${total.skipped}`,
          ...(wouldFail ?? []).map((f) => `  would fail: ${String(f.count).padStart(8)}  ${f.reason} ${f.path || '-'}  e.g. ${f.samples[0]?.message ?? ''}`),
          ...failures.map((f) => `  ${f.idempotency_key}: ${f.reason} ${f.path || '-'} ${f.message}`),
          ...(total.failed > 0 ? [nextStepAfterFailures(dry, patch !== undefined)] : dry && total.replayed > 0 ? ['To replay them: the same command without --dry-run.'] : []),
        ].join('\n'),
      );
      return total.failed > 0 ? 1 : 0;
    }
    case 'discard': {
      if (!flags.why) throw new SluiceError('SLUICE_ERR_CONFIG', 'say why with --why "…" (kept in the audit log)');
      const r = await call<{ discarded: number }>(t, 'POST', '/v1/dlq/discard', { ...filterQuery(flags), id: flags.id?.split(','), reason_for_discard: flags.why, limit: flags.limit ? Number(flags.limit) : undefined });
      print(t, r, () => `discarded ${r.discarded}`);
      return 0;
    }
    default:
      throw new SluiceError('SLUICE_ERR_CONFIG', `unknown command "dlq ${sub ?? ''}"; use list, show, groups, group, replay or discard`);
  }
}

/** What to do when entries would fail (or failed) again: mend them with a patch, change the schema, or discard them. */
function nextStepAfterFailures(dry: boolean, patched: boolean): string {
  const again = dry ? 'To make them pass' : 'They stay dead-lettered. To replay them';
  const patch = patched ? 'change the steps in --patch' : 'add --patch FILE.json (transform steps, {"steps": [...]}, applied to each entry before it is validated again)';
  return `${again}: ${patch}, or publish a schema version that accepts them (sluice schema push); to drop them for good: sluice dlq discard --why "…" with the same filter.`;
}

export async function tenantStateCommand(t: Target, sub: 'pause' | 'resume', reason: string | undefined): Promise<number> {
  const r = await call<{ tenant: string; held?: number }>(t, 'POST', `/v1/tenant/${sub}`, sub === 'pause' ? { reason } : {});
  print(t, r, () => (sub === 'pause' ? `tenant ${r.tenant} paused: its events are held until "sluice tenant resume"` : `tenant ${r.tenant} resumed; ${r.held ?? 0} held events are being replayed`));
  return 0;
}

interface WireBackfill {
  id: string;
  status: string;
  done: number;
  total: number;
  percent: number;
  events_per_second: number;
  eta_seconds: number | null;
  error: string | null;
}

/** `sluice backfill`: starts a rebuild and follows its progress until it ends (unless --no-wait). */
export async function backfillCommand(t: Target, flags: { view?: string; from?: string; to?: string; rate?: string; wait: boolean }): Promise<number> {
  if (!flags.view) throw new SluiceError('SLUICE_ERR_CONFIG', 'name the view to rebuild: --view counts_1m');
  let s = await call<WireBackfill>(t, 'POST', '/v1/backfills', { view: flags.view, from: flags.from, to: flags.to, rate: flags.rate === undefined ? undefined : Number(flags.rate) });
  if (!t.json) t.err.write(`backfill ${s.id} of ${flags.view}: ${s.total} events to aggregate\n`);
  const status = new StatusLine(t.err);
  while (flags.wait && s.status === 'running') {
    await new Promise((r) => setTimeout(r, 1_000));
    s = await call<WireBackfill>(t, 'GET', `/v1/backfills/${s.id}`);
    if (!t.json) status.show(`${s.done} of ${s.total} events (${s.percent}%), ${s.events_per_second} events/s${s.eta_seconds === null ? '' : `, ETA ${s.eta_seconds} s`}`);
  }
  if (!t.json && flags.wait) status.end();
  print(t, s, () => (s.status === 'running' ? `backfill ${s.id} running; follow it with GET /v1/backfills/${s.id}` : `backfill ${s.id} ${s.status}${s.error ? `: ${s.error}` : ''}`));
  return s.status === 'failed' ? 1 : 0;
}
