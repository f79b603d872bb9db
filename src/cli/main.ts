#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { keyIdOf } from '../backends/api-keys.js';
import { openCatalog } from '../backends/registry.js';
import { loadConfig } from '../config/load.js';
import { coerceError, SluiceError } from '../core/errors.js';
import { HttpError } from './http-client.js';
import type { KeyScope, TenantQuota, TenantSettings, UnknownTypes } from '../ports/catalog.js';
import { backfillCommand, dlqCommand, schemaCommand, tenantStateCommand } from './admin.js';
import { queryCommand } from './query.js';
import { rolloutCommand } from './rollout.js';
import { send } from './send.js';
import { top } from './top.js';
import { ALL_ROLES, banner, up } from '../app/up.js';
import { doctor, formatFindings } from './doctor.js';

const USAGE = `sluice: an event pipeline (ingest → log → workers → store → query)

Usage:
  sluice up [--data-dir DIR] [--port 8080] [--host 127.0.0.1] [--partitions 16] [--config FILE]
            [--log embedded|nats://HOST:4222[,HOST:4222…]] [--store embedded|postgres://USER@HOST/DB[?schema=S]]
      Runs every role in one process; on the embedded default (SQLite log, DuckDB store in the
      data directory) unless --log / --store name NATS JetStream and PostgreSQL.
  sluice doctor [--log …] [--store …] [--config FILE] [--json]
      Checks the backends a configuration names and their durability settings (NATS version
      and sync_interval, stream replicas, PostgreSQL fsync and synchronous_commit); exit 1 on a failure.
  sluice ingest|worker|query --log nats://… --store postgres://… [--port N] [same flags as up]
      One role per process, for scale-out: ingest (the event endpoints, stateless), worker
      (consumers sharing the partitions through leases), query (queries, views, events, DLQ).
  sluice tenant create NAME [--data-dir DIR] [--json]
      Creates a tenant and prints its write, read and admin keys (once). Works while "up" runs.
  sluice tenant set NAME [--unknown-types accept|dead-letter|reject] [--events-per-second N]
                         [--bytes-per-second N] [--backlog N] [--data-dir DIR]
      Changes a tenant's settings: what ingest does with event types that have no schema, and
      its quotas (0 = unlimited, "default" = the configured default). Takes effect within a second.
  sluice tenant pause|resume --key ADMIN_KEY [--url URL] [--reason TEXT]
      Holds a tenant's events (as the dead-letter breaker does), or lets them flow again and
      replays what was held.
  sluice key create TENANT --scope write|read|admin|schema [--team TEAM] [--data-dir DIR]
      Issues another key; a schema key publishes the schemas of its team.
  sluice key revoke KEY_ID [--data-dir DIR]
      Revokes a key by its id (sluice_w_<id>_…) or the whole key; a running server refuses it within 5 s.
  sluice schema push|check TYPE FILE.json [--owner TEAM] [--force --reason TEXT] [--dry-run]
  sluice schema list | show TYPE [--version N] | diff TYPE [--from N] [--to N] | types [FILE.ts]
      The schema registry (admin or schema key). check = push --dry-run: compatibility with
      the previous version and "N of the last M events would fail", before anything changes.
      types: TypeScript types of every event type's properties, for SluiceClient<SluiceEvents>.
  sluice dlq list|groups [--type T] [--reason R] [--group SIG] [--from -24h] [--to now] [--status open,held]
  sluice dlq show IDEMPOTENCY_KEY
  sluice dlq replay [--group SIG | --id K1,K2 | --type T --reason R --from … --to …] [--rate N] [--limit N] [--dry-run]
  sluice dlq discard [filters as above] --why TEXT
      Dead letters (admin key): browse, group by error signature, replay through the live
      path with the original keys (twice changes nothing), or discard with a reason.
  sluice rollout list | show ID | diff ID [--limit N] | create FILE.json | advance|pause|resume|abort|promote ID
      Safe rollouts of a change (admin key): shadow, compare, cohort and guarded ramp, each
      decision with the numbers behind it; a guardrail breach rolls back and repairs.
  sluice send --key WRITE_KEY [--url URL] [--batch 500] [--concurrency 4] [FILE.ndjson | -]
      Sends NDJSON events in batches, with progress; retries keep the same idempotency keys.
  sluice query --key READ_KEY [--url URL] [--event TYPE] [--from -24h] [--to now] [--interval 1h|none]
               [--measures count,sum:amount,uniq:key,p95:latency_ms] [--group-by properties.region]
               [--filter FIELD:OP[:VALUE]]... [--order-by -count] [--limit N] [--source raw] [--csv | --json]
      Counts and measures per bucket and group, from a view when one covers the query.
  sluice query events [--type T] [--event-key K] [--from -7d] [--to now] [--limit 100] [--cursor C]
  sluice query event IDEMPOTENCY_KEY     where an event is: stored, dead-lettered, in the log, or unknown
  sluice query tail [--type T]           live events as they are accepted
  sluice query views [put NAME FILE.json | show NAME | delete NAME]   (put and delete: admin key)
  sluice top [--url URL] [--interval 2] [--once]
      A live view of rates, latency, lag, freshness, errors and the conservation gap.

Configuration, highest precedence first: flags, SLUICE_* environment variables (SLUICE_PORT, SLUICE_DATA_DIR,
SLUICE_LOG_FSYNC, ...), then a JSON file (--config or SLUICE_CONFIG). The client commands
read SLUICE_URL and SLUICE_KEY.`;

function usageError(message: string): never {
  throw new SluiceError('SLUICE_ERR_CONFIG', `${message}\n\n${USAGE}`);
}

function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) usageError(`--${name} must be an integer, got "${v}"`);
  return n;
}

const SERVER_FLAGS = {
  'data-dir': { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  partitions: { type: 'string' },
  fsync: { type: 'string' },
  config: { type: 'string' },
  log: { type: 'string' },
  store: { type: 'string' },
  catalog: { type: 'string' },
} as const;

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

/**
 * parseArgs with one convenience: a string option may take a value that starts with one
 * dash (`--from -24h`, `--order-by -count`), which node:util would otherwise call
 * ambiguous. sluice has no short options, so such a value is never a flag.
 */
function parse<O extends Options>(args: string[], options: O) {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const name = a.startsWith('--') ? a.slice(2) : null;
    const next = args[i + 1];
    if (name && options?.[name]?.type === 'string' && next !== undefined && /^-[^-]/.test(next)) {
      joined.push(`${a}=${next}`);
      i++;
    } else joined.push(a);
  }
  return parseArgs({ args: joined, options, allowPositionals: true, strict: true });
}

function serverConfig(values: Record<string, string | boolean | undefined>) {
  const flags: Record<string, unknown> = {};
  if (values['data-dir'] !== undefined) flags.dataDir = values['data-dir'];
  if (values.host !== undefined) flags.host = values.host;
  if (values.port !== undefined) flags.port = int(values.port as string, 'port');
  if (values.partitions !== undefined) flags.partitions = int(values.partitions as string, 'partitions');
  const log: Record<string, unknown> = {};
  if (values.fsync !== undefined) log.fsync = values.fsync;
  if (values.log !== undefined) log.url = values.log;
  if (Object.keys(log).length > 0) flags.log = log;
  if (values.store !== undefined) flags.store = { url: values.store };
  if (values.catalog !== undefined) flags.catalog = { url: values.catalog };
  return loadConfig({ flags, file: values.config as string | undefined });
}

function clientTarget(values: Record<string, string | boolean | undefined>): { url: string; key: string } {
  const key = (values.key as string | undefined) ?? process.env.SLUICE_KEY;
  if (!key) usageError('--key is required (or set SLUICE_KEY)');
  return { url: (values.url as string | undefined) ?? process.env.SLUICE_URL ?? 'http://127.0.0.1:8080', key };
}

/** `sluice query …` as the query client (see query.ts). */
async function queryClient(rest: string[]): Promise<number> {
    const { values, positionals } = parse(rest, {
      key: { type: 'string' },
      url: { type: 'string' },
      event: { type: 'string' },
      type: { type: 'string' },
      'event-key': { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      interval: { type: 'string' },
      measures: { type: 'string' },
      'group-by': { type: 'string' },
      filter: { type: 'string', multiple: true },
      'order-by': { type: 'string' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      source: { type: 'string' },
      csv: { type: 'boolean' },
      json: { type: 'boolean' },
    } as const);
    const [sub, ...args] = positionals;
    const { filter, ...single } = values;
    return queryCommand(clientTarget(single), sub, args, { ...single, filter, key: values['event-key'] }, process.stdout);
}

/** Whether `sluice query ARGS` starts the query role: server flags only, no positionals. */
function serverInvocation(args: string[]): boolean {
  try {
    return parse(args, SERVER_FLAGS).positionals.length === 0;
  } catch {
    return false;
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'up':
    case 'ingest':
    case 'worker':
    case 'query': {
      // `sluice query` is also the query client: it is the query role only when given server
      // flags alone (--log, --store, --port…), never a measure or --key.
      if (command === 'query' && !serverInvocation(rest)) return queryClient(rest);
      const { values, positionals } = parse(rest, SERVER_FLAGS);
      if (positionals.length > 0) usageError(`${command} takes no arguments, got "${positionals.join(' ')}"`);
      const config = serverConfig(values);
      const running = await up(config, command === 'up' ? ALL_ROLES : [command]);
      process.stdout.write(banner(running, config) + '\n');
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.stderr.write('\nsluice: draining (in-flight requests and the batch in hand), then stopping\n');
          void running.close().then(resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      return 0;
    }
    case 'schema':
    case 'dlq': {
      const [sub, ...args] = rest;
      const { values, positionals } = parse(args, {
        key: { type: 'string' }, url: { type: 'string' }, json: { type: 'boolean' },
        owner: { type: 'string' }, force: { type: 'boolean' }, reason: { type: 'string' }, 'dry-run': { type: 'boolean' },
        version: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' },
        type: { type: 'string' }, group: { type: 'string' }, id: { type: 'string' }, status: { type: 'string' },
        limit: { type: 'string' }, cursor: { type: 'string' }, rate: { type: 'string' }, why: { type: 'string' },
      } as const);
      const t = { ...clientTarget(values), json: values.json === true, out: process.stdout, err: process.stderr };
      const flags = { ...values, dryRun: values['dry-run'] === true } as Record<string, string | undefined> & { force?: boolean; dryRun?: boolean };
      return command === 'schema' ? schemaCommand(t, sub, positionals, flags) : dlqCommand(t, sub, positionals, flags);
    }
    case 'rollout': {
      const [sub, ...args] = rest;
      const { values, positionals } = parse(args, { key: { type: 'string' }, url: { type: 'string' }, json: { type: 'boolean' }, limit: { type: 'string' }, global: { type: 'boolean' } } as const);
      const t = { ...clientTarget(values), json: values.json === true, out: process.stdout, err: process.stderr };
      return rolloutCommand(t, sub, positionals, { limit: values.limit, global: values.global === true });
    }
    case 'backfill': {
      const { values, positionals } = parse(rest, {
        key: { type: 'string' }, url: { type: 'string' }, json: { type: 'boolean' }, view: { type: 'string' },
        from: { type: 'string' }, to: { type: 'string' }, rate: { type: 'string' }, 'no-wait': { type: 'boolean' },
      } as const);
      if (positionals.length > 0) usageError(`backfill takes no arguments, got "${positionals.join(' ')}"`);
      const t = { ...clientTarget(values), json: values.json === true, out: process.stdout, err: process.stderr };
      return backfillCommand(t, { view: values.view, from: values.from, to: values.to, rate: values.rate, wait: values['no-wait'] !== true });
    }
    case 'key': {
      const [sub, ...args] = rest;
      if (sub === 'revoke') {
        const { values, positionals } = parse(args, { ...SERVER_FLAGS } as const);
        if (positionals.length !== 1) usageError('key revoke takes exactly one KEY_ID (or the whole key)');
        // The id is the part after the scope letter: sluice_w_<id>_<secret>; a whole key is accepted too.
        const id = keyIdOf(positionals[0]!);
        const catalog = await openCatalog(serverConfig(values));
        try {
          if (!(await catalog.revokeKey(id))) usageError(`no key with the id ${id}`);
          process.stdout.write(`key ${id} revoked (a running server refuses it within 5 s)\n`);
        } finally {
          await catalog.close();
        }
        return 0;
      }
      if (sub !== 'create') usageError(`unknown command "key ${sub ?? ''}"; use create or revoke`);
      const { values, positionals } = parse(args, { ...SERVER_FLAGS, scope: { type: 'string' }, team: { type: 'string' }, json: { type: 'boolean' } } as const);
      if (positionals.length !== 1) usageError('key create takes exactly one TENANT');
      const scope = values.scope ?? 'write';
      if (!['write', 'read', 'admin', 'schema'].includes(scope)) usageError('--scope must be write, read, admin or schema');
      const catalog = await openCatalog(serverConfig(values));
      try {
        const key = await catalog.createKey(positionals[0]!, scope as KeyScope, values.team);
        process.stdout.write(values.json ? JSON.stringify({ tenant: positionals[0], scope, team: values.team ?? null, key }) + '\n' : `${scope} key: ${key}\n(shown this once)\n`);
      } finally {
        await catalog.close();
      }
      return 0;
    }
    case 'tenant': {
      const [sub, ...args] = rest;
      if (sub === 'pause' || sub === 'resume') {
        const { values, positionals } = parse(args, { key: { type: 'string' }, url: { type: 'string' }, json: { type: 'boolean' }, reason: { type: 'string' } } as const);
        if (positionals.length > 0) usageError(`tenant ${sub} acts on the admin key's tenant and takes no NAME`);
        return tenantStateCommand({ ...clientTarget(values), json: values.json === true, out: process.stdout, err: process.stderr }, sub, values.reason);
      }
      if (sub === 'set') {
        const { values, positionals } = parse(args, {
          ...SERVER_FLAGS,
          'unknown-types': { type: 'string' },
          'events-per-second': { type: 'string' },
          'bytes-per-second': { type: 'string' },
          backlog: { type: 'string' },
          json: { type: 'boolean' },
        } as const);
        if (positionals.length !== 1) usageError('tenant set takes exactly one NAME');
        const unknownTypes = values['unknown-types'];
        const patch: Partial<TenantSettings> = {};
        if (unknownTypes !== undefined) {
          if (!['accept', 'dead-letter', 'reject'].includes(unknownTypes)) usageError('--unknown-types must be accept, dead-letter or reject');
          patch.unknownTypes = unknownTypes as UnknownTypes;
        }
        const quota: TenantQuota = {};
        for (const [flag, key] of [['events-per-second', 'eventsPerSecond'], ['bytes-per-second', 'bytesPerSecond'], ['backlog', 'backlog']] as const) {
          const v = values[flag];
          if (v === undefined) continue;
          // "default" puts the configured default back.
          const n = v === 'default' ? undefined : int(v, flag);
          if (n !== undefined && n < 0) usageError(`--${flag} must be 0 (unlimited) or more, or "default"`);
          quota[key] = n;
        }
        if (patch.unknownTypes === undefined && Object.keys(quota).length === 0) {
          usageError('tenant set: name a setting to change, e.g. --unknown-types dead-letter or --events-per-second 5000');
        }
        const catalog = await openCatalog(serverConfig(values));
        try {
          if (Object.keys(quota).length > 0) patch.quota = { ...(await catalog.settings(positionals[0]!)).quota, ...quota };
          const settings = await catalog.updateSettings(positionals[0]!, patch, 'cli');
          const q = settings.quota;
          const show = (v: number | undefined) => (v === undefined ? 'default' : v === 0 ? 'unlimited' : String(v));
          process.stdout.write(
            values.json
              ? JSON.stringify({ tenant: positionals[0], settings }) + '\n'
              : `tenant ${positionals[0]}: unknown types → ${settings.unknownTypes}; events/s ${show(q.eventsPerSecond)}, bytes/s ${show(q.bytesPerSecond)}, backlog ${show(q.backlog)}\n`,
          );
        } finally {
          await catalog.close();
        }
        return 0;
      }
      if (sub !== 'create') usageError(`unknown command "tenant ${sub ?? ''}"`);
      const { values, positionals } = parse(args, { ...SERVER_FLAGS, json: { type: 'boolean' } } as const);
      if (positionals.length !== 1) usageError('tenant create takes exactly one NAME');
      const catalog = await openCatalog(serverConfig(values));
      try {
        const t = await catalog.createTenant(positionals[0]!);
        if (values.json) process.stdout.write(JSON.stringify({ tenant: t.tenant, write_key: t.writeKey, read_key: t.readKey, admin_key: t.adminKey }) + '\n');
        else process.stdout.write(`tenant:    ${t.tenant}\nwrite key: ${t.writeKey}\nread key:  ${t.readKey}\nadmin key: ${t.adminKey}\n(the keys are shown this once)\n`);
      } finally {
        await catalog.close();
      }
      return 0;
    }
    case 'send': {
      const { values, positionals } = parse(rest, { key: { type: 'string' }, url: { type: 'string' }, batch: { type: 'string' }, concurrency: { type: 'string' } } as const);
      const target = clientTarget(values);
      const s = await send({
        ...target,
        file: positionals[0] ?? '-',
        batchSize: int(values.batch, 'batch') ?? 500,
        concurrency: int(values.concurrency, 'concurrency') ?? 4,
      });
      process.stdout.write(
        `sent ${s.sent}, accepted ${s.accepted}, duplicates ${s.duplicates}, rejected ${s.rejected}` +
          (s.invalidLines ? `, invalid lines skipped ${s.invalidLines}` : '') +
          '\n',
      );
      return s.rejected > 0 || s.invalidLines > 0 ? 1 : 0;
    }
    case 'doctor': {
      const { values, positionals } = parse(rest, { ...SERVER_FLAGS, json: { type: 'boolean' } });
      if (positionals.length > 0) usageError(`doctor takes no arguments, got "${positionals.join(' ')}"`);
      const findings = await doctor(serverConfig(values));
      process.stdout.write((values.json ? JSON.stringify({ findings }) : formatFindings(findings)) + '\n');
      return findings.some((f) => f.level === 'fail') ? 1 : 0;
    }
    case 'top': {
      const { values, positionals } = parse(rest, { url: { type: 'string' }, interval: { type: 'string' }, once: { type: 'boolean' } } as const);
      if (positionals.length > 0) usageError(`top takes no arguments, got "${positionals.join(' ')}"`);
      const interval = Number(values.interval ?? 2);
      if (!Number.isFinite(interval) || interval <= 0) usageError(`--interval must be a positive number of seconds, got "${values.interval}"`);
      const url = (values.url as string | undefined) ?? process.env.SLUICE_URL ?? 'http://127.0.0.1:8080';
      await top({ url, intervalMs: interval * 1000, once: values.once === true, out: process.stdout });
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return command === undefined ? 2 : 0;
    default:
      usageError(`unknown command "${command}"`);
  }
}

function isUsageError(e: Error): boolean {
  return String((e as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS_');
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const err = coerceError(e);
    if (err instanceof HttpError) process.stderr.write(`sluice: ${err.message}\n`);
    else if (err instanceof SluiceError) process.stderr.write(`sluice: ${err.message}\n`);
    else if (isUsageError(err)) process.stderr.write(`sluice: ${err.message}\nRun "sluice help" for usage.\n`);
    else process.stderr.write(`sluice: ${err.stack ?? err.message}\n`);
    process.exit((err instanceof SluiceError && err.code === 'SLUICE_ERR_CONFIG') || isUsageError(err) ? 2 : 1);
  },
);
