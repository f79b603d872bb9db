import fs from 'node:fs';
import { Command, Option, type OutputConfiguration } from 'commander';
import { didYouMean } from '../query/warnings.js';
import { keyIdOf } from '../backends/api-keys.js';
import { openCatalog } from '../backends/registry.js';
import { loadConfig } from '../config/load.js';
import { SluiceError } from '../core/errors.js';
import type { KeyScope, TenantQuota, TenantSettings, UnknownTypes } from '../ports/catalog.js';
import { backfillCommand, dlqCommand, schemaCommand, tenantStateCommand } from './admin.js';
import { alertsCommand, ALERTS_USAGE } from './alerts.js';
import { pipelineCommand, PIPELINE_USAGE } from './pipeline.js';
import { rolloutCommand } from './rollout.js';
import { doctor, formatFindings } from './doctor.js';
import { queryCommand, type QueryFlags } from './query.js';
import { send } from './send.js';
import { top } from './top.js';
import { ALL_ROLES, serve, type Role } from '../app/up.js';

/**
 * The command line's grammar, on commander: every command has `--help`, the program has
 * `--version`, a misspelled command or flag gets a "did you mean". Client commands share
 * `--url`/`--key` (with SLUICE_URL/SLUICE_KEY), commands that open the data directory share
 * `--data-dir` and the other server flags. The commands' work lives in the sibling modules;
 * this file only reads the flags and calls them.
 */

type Opts = Record<string, string | string[] | boolean | undefined>;

export const DEFAULT_URL = 'http://127.0.0.1:8080';

function usage(message: string): never {
  throw new SluiceError('SLUICE_ERR_CONFIG', message);
}

function int(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) usage(`--${name} must be an integer, got "${String(v)}"`);
  return n;
}

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** --url and --key, with their environment variables. */
function clientOptions(cmd: Command, keyWhat: string): Command {
  return cmd
    .addOption(new Option('--url <url>', 'the sluice server').env('SLUICE_URL').default(DEFAULT_URL))
    .addOption(new Option('--key <key>', keyWhat).env('SLUICE_KEY'));
}

/** The flags of a process that opens the log, the store or the catalog. */
function serverOptions(cmd: Command): Command {
  return cmd
    .option('--data-dir <dir>', 'where the embedded log, catalog and store live (SLUICE_DATA_DIR; default ./data)')
    .option('--config <file>', 'a JSON configuration file (SLUICE_CONFIG)')
    .option('--port <n>', 'HTTP port (SLUICE_PORT; default 8080)')
    .option('--host <host>', 'HTTP host (SLUICE_HOST; default 127.0.0.1)')
    .option('--partitions <n>', 'log partitions (SLUICE_PARTITIONS; default 16)')
    .option('--fsync <mode>', 'always|normal|off (SLUICE_LOG_FSYNC; default always)')
    .option('--log <url>', 'embedded, or nats://HOST:4222[,HOST:4222…] (SLUICE_LOG_URL)')
    .option('--store <url>', 'embedded, or postgres://USER@HOST/DB[?schema=S] (SLUICE_STORE_URL)')
    .option('--catalog <url>', 'embedded, or postgres://USER@HOST/DB[?schema=S] (SLUICE_CATALOG_URL)');
}

const SERVER_FLAGS = ['dataDir', 'config', 'port', 'host', 'partitions', 'fsync', 'log', 'store', 'catalog'] as const;

function serverConfig(o: Opts) {
  const flags: Record<string, unknown> = {};
  if (o.dataDir !== undefined) flags.dataDir = o.dataDir;
  if (o.host !== undefined) flags.host = o.host;
  if (o.port !== undefined) flags.port = int(o.port, 'port');
  if (o.partitions !== undefined) flags.partitions = int(o.partitions, 'partitions');
  const log: Record<string, unknown> = {};
  if (o.fsync !== undefined) log.fsync = o.fsync;
  if (o.log !== undefined) log.url = o.log;
  if (Object.keys(log).length > 0) flags.log = log;
  if (o.store !== undefined) flags.store = { url: o.store };
  if (o.catalog !== undefined) flags.catalog = { url: o.catalog };
  return loadConfig({ flags, file: o.config as string | undefined });
}

function target(o: Opts, keyWhat: string): { url: string; key: string } {
  if (!o.key) usage(`--key is required (or set SLUICE_KEY): ${keyWhat}`);
  return { url: o.url as string, key: o.key as string };
}

function io(o: Opts, keyWhat: string) {
  return { ...target(o, keyWhat), json: o.json === true, out: process.stdout, err: process.stderr };
}

/** The keys each kind of command needs, as the messages say it. */
const WRITE = 'a write key (sluice_w_…)';
const READ = 'a read key (sluice_r_…)';
const ADMIN = 'an admin key (sluice_a_…)';

/** Builds the program; `exit` receives the exit code of the command that ran; `output` overrides where commander writes. */
export function buildProgram(exit: (code: number) => void, output: OutputConfiguration = {}): Command {
  const program = new Command('sluice')
    .description('an event pipeline: ingest → log → workers → store → query')
    .version(version(), '-V, --version')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`sluice: ${text.replace(/^error: /, '')}`), ...output })
    .showSuggestionAfterError(true)
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      `
Configuration, highest precedence first: flags, SLUICE_* environment variables (SLUICE_PORT,
SLUICE_DATA_DIR, SLUICE_LOG_LEVEL, ...), then a JSON file (--config or SLUICE_CONFIG). The
client commands read SLUICE_URL and SLUICE_KEY. Keys: "sluice up" prints the default
tenant's write, read and admin keys once; "sluice key create default --scope read" issues another.
`,
    );
  const act = <A extends unknown[]>(fn: (...a: A) => Promise<number>) => async (...a: A): Promise<void> => exit(await fn(...a));

  for (const role of ['up', 'ingest', 'worker'] as const) {
    serverOptions(
      program
        .command(role)
        .description(
          role === 'up'
            ? 'run every role in one process (embedded SQLite log and DuckDB store by default)'
            : `run the ${role} role alone, for scale-out (needs --log nats://… --store postgres://…)`,
        ),
    ).action(act((o: Opts) => serve(serverConfig(o), role === 'up' ? ALL_ROLES : [role as Role])));
  }

  serverOptions(program.command('doctor').description('check the backends a configuration names and their durability settings; exit 1 on a failure'))
    .option('--json', 'JSON output')
    .action(
      act(async (o: Opts) => {
        const findings = await doctor(serverConfig(o));
        process.stdout.write((o.json ? JSON.stringify({ findings }) : formatFindings(findings)) + '\n');
        return findings.some((f) => f.level === 'fail') ? 1 : 0;
      }),
    );

  addQuery(program, act);

  const tenant = program.command('tenant').description("create tenants, change their settings, pause or resume them");
  serverOptions(tenant.command('create').description("create a tenant and print its write, read and admin keys (once); works while up runs").argument('<name>'))
    .option('--json', 'JSON output')
    .action(
      act(async (name: string, o: Opts) => {
        const catalog = await openCatalog(serverConfig(o));
        try {
          const t = await catalog.createTenant(name);
          if (o.json) process.stdout.write(JSON.stringify({ tenant: t.tenant, write_key: t.writeKey, read_key: t.readKey, admin_key: t.adminKey }) + '\n');
          else process.stdout.write(`tenant:    ${t.tenant}\nwrite key: ${t.writeKey}\nread key:  ${t.readKey}\nadmin key: ${t.adminKey}\n(the keys are shown this once)\n`);
        } finally {
          await catalog.close();
        }
        return 0;
      }),
    );
  serverOptions(tenant.command('set').description("change a tenant's settings: unknown event types and quotas (0 = unlimited, default = the configured default)").argument('<name>'))
    .option('--unknown-types <what>', 'accept|dead-letter|reject')
    .option('--events-per-second <n>', 'quota')
    .option('--bytes-per-second <n>', 'quota')
    .option('--backlog <n>', 'events accepted and not yet processed')
    .option('--json', 'JSON output')
    .action(act((name: string, o: Opts) => tenantSet(name, o)));
  for (const sub of ['pause', 'resume'] as const) {
    clientOptions(
      tenant.command(sub).description(sub === 'pause' ? "hold the admin key's tenant's events" : 'let them flow again and replay what was held'),
      ADMIN,
    )
      .option('--reason <text>', 'why (kept in the audit log)')
      .option('--json', 'JSON output')
      .action(act((o: Opts) => tenantStateCommand(io(o, ADMIN), sub, o.reason as string | undefined)));
  }

  const key = program.command('key').description('issue or revoke keys');
  serverOptions(key.command('create').description('issue another key for a tenant (a schema key publishes the schemas of its team)').argument('<tenant>'))
    .addOption(new Option('--scope <scope>', 'the key').choices(['write', 'read', 'admin', 'schema']).default('write'))
    .option('--team <team>', 'the team of a schema key')
    .option('--json', 'JSON output')
    .action(
      act(async (tenantName: string, o: Opts) => {
        const catalog = await openCatalog(serverConfig(o));
        try {
          const k = await catalog.createKey(tenantName, o.scope as KeyScope, o.team as string | undefined);
          process.stdout.write(o.json ? JSON.stringify({ tenant: tenantName, scope: o.scope, team: o.team ?? null, key: k }) + '\n' : `${o.scope as string} key: ${k}\n(shown this once)\n`);
        } finally {
          await catalog.close();
        }
        return 0;
      }),
    );
  serverOptions(key.command('revoke').description('revoke a key by its id (sluice_w_<id>_…) or the whole key; a running server refuses it within 5 s').argument('<key-id>')).action(
    act(async (given: string, o: Opts) => {
      const id = keyIdOf(given);
      const catalog = await openCatalog(serverConfig(o));
      try {
        if (!(await catalog.revokeKey(id))) usage(`no key with the id ${id}`);
        process.stdout.write(`key ${id} revoked (a running server refuses it within 5 s)\n`);
      } finally {
        await catalog.close();
      }
      return 0;
    }),
  );

  const schema = program.command('schema').description('the schema registry (admin or schema key)');
  const schemaSub = (name: string, description: string, args: string[], extra: (c: Command) => Command = (c) => c) => {
    const c = schema.command(name).description(description);
    for (const a of args) c.argument(a);
    clientOptions(extra(c), `${ADMIN} or a schema key`)
      .option('--json', 'JSON output')
      .action(
        act(async (...a: unknown[]) => {
          const o = a[args.length] as Opts;
          const positionals = a.slice(0, args.length).filter((x) => x !== undefined) as string[];
          return schemaCommand(io(o, `${ADMIN} or a schema key`), name, positionals, { ...(o as Record<string, string>), force: o.force === true, dryRun: o.dryRun === true } as never);
        }),
      );
  };
  const pushFlags = (c: Command) =>
    c.option('--owner <team>', 'the team that owns the type').option('--force', 'publish even if incompatible (needs --reason)').option('--reason <text>', 'why a forced publish').option('--dry-run', 'check only');
  schemaSub('push', 'publish a new version of an event type\'s schema', ['<type>', '<file>'], pushFlags);
  schemaSub('check', 'what a push would say (compatibility, recent traffic), changing nothing', ['<type>', '<file>'], pushFlags);
  schemaSub('list', 'every event type with a schema', []);
  schemaSub('show', 'one schema', ['<type>'], (c) => c.option('--version <n>', 'a version (default the latest)'));
  schemaSub('diff', 'what changed between two versions', ['<type>'], (c) => c.option('--from <n>', 'version').option('--to <n>', 'version'));
  schemaSub('types', 'TypeScript types of every event type, for SluiceClient<SluiceEvents>', ['[file]']);

  const dlq = program.command('dlq').description('dead letters (admin key): browse, group, replay, discard');
  const filters = (c: Command) =>
    c
      .option('--type <type>', 'event type')
      .option('--reason <reason>', 'e.g. schema_violation')
      .option('--group <signature>', 'an error signature (see dlq groups)')
      .option('--from <time>', 'e.g. -24h')
      .option('--to <time>', 'e.g. now')
      .option('--status <list>', 'open,held')
      .option('--limit <n>', 'at most')
      .option('--id <keys>', 'idempotency keys, comma-separated');
  const dlqSub = (name: string, description: string, args: string[], extra: (c: Command) => Command) => {
    const c = dlq.command(name).description(description);
    for (const a of args) c.argument(a);
    clientOptions(extra(c), ADMIN)
      .option('--json', 'JSON output')
      .action(
        act(async (...a: unknown[]) => {
          const o = a[args.length] as Opts;
          return dlqCommand(io(o, ADMIN), name, a.slice(0, args.length) as string[], { ...(o as Record<string, string>), dryRun: o.dryRun === true } as never);
        }),
      );
  };
  dlqSub('list', 'dead letters, newest first', [], (c) => filters(c).option('--cursor <c>', 'next page'));
  dlqSub('groups', 'dead letters by error signature', [], filters);
  dlqSub('show', 'one dead letter', ['<idempotency-key>'], (c) => c);
  dlqSub('replay', 'replay through the live path with the original keys (twice changes nothing)', [], (c) =>
    filters(c)
      .option('--rate <n>', 'events per second')
      .option('--dry-run', 'count only, and predict what would pass or fail')
      .option('--patch <file>', 'transform steps ({"steps": [...]}, JSON) applied to each entry before re-validation'),
  );
  dlqSub('discard', 'discard, with a reason kept in the audit log', [], (c) => filters(c).option('--why <text>', 'the reason (required)'));

  clientOptions(
    program
      .command('alerts')
      .description('alert rules (SLOs, thresholds, built-ins), their state, history, budgets, backtests, receivers, routing and silences')
      .argument('[sub]', 'list (the default), rules, rule, history, budget, backtest, receivers, receiver, routing, silences, silence')
      .argument('[args...]', 'the sub-command\'s arguments (see docs/alerts.md)')
      .addHelpText('after', `\n${ALERTS_USAGE}`),
    `${READ} to read, ${ADMIN} to change`,
  )
    .option('--state <state>', 'firing, pending, resolved, inactive, insufficient_data')
    .option('--rule <name>', 'one rule')
    .option('--from <time>', 'e.g. -7d')
    .option('--to <time>', 'e.g. now')
    .option('--bucket <size>', '1h or 1d (budget)')
    .option('--file <file>', 'a rule to backtest before saving it (JSON)')
    .option('--json', 'JSON output')
    .action(
      act((sub: string | undefined, args: string[], o: Opts) =>
        alertsCommand(io(o, `${READ} to read, ${ADMIN} to change`), sub === 'list' ? undefined : sub, args, o as Record<string, string | undefined>),
      ),
    );

  clientOptions(
    program
      .command('pipeline')
      .description("the tenant's transform pipeline (admin key): show, push a new version, test over events, list versions")
      .argument('<sub>', 'show, push, test or versions')
      .argument('[file]', 'the pipeline document (push, test)')
      .addHelpText('after', `\n${PIPELINE_USAGE}`),
    ADMIN,
  )
    .option('--version <n>', 'a stored version (show, test)')
    .option('--expected-version <n>', 'push: only if the current version is this one (compare-and-set)')
    .option('--events <file>', 'test: a JSON array of events')
    .option('--sample <type>', 'test: the last stored events of this type')
    .option('--last <n>', 'test: how many (with --sample)')
    .option('--limit <n>', 'versions: at most')
    .option('--json', 'JSON output')
    .action(
      act((sub: string, file: string | undefined, o: Opts) => {
        const { url, key } = target(o, ADMIN);
        const flags: [string, unknown][] = [
          ['--version', o.version],
          ['--expected-version', o.expectedVersion],
          ['--events', o.events],
          ['--sample', o.sample],
          ['--last', o.last],
          ['--limit', o.limit],
        ];
        const argv = [sub, ...(file === undefined ? [] : [file]), '--url', url, '--key', key, ...(o.json ? ['--json'] : [])];
        for (const [flag, v] of flags) if (v !== undefined) argv.push(flag, String(v));
        return pipelineCommand(argv);
      }),
    );

  clientOptions(
    program
      .command('rollout')
      .description('safe rollouts of a change (admin key): shadow, compare, cohort and guarded ramp, with recorded decisions and rollback')
      .argument('<sub>', 'list, show, diff, create, advance, pause, resume, abort or promote')
      .argument('[arg]', 'the rollout id, or the rollout document (create: FILE.json, - for standard input)'),
    ADMIN,
  )
    .option('--limit <n>', 'diff: samples at most')
    .option('--global', 'an operator-wide rollout (not supported yet)')
    .option('--json', 'JSON output')
    .action(
      act((sub: string, arg: string | undefined, o: Opts) =>
        rolloutCommand(io(o, ADMIN), sub, arg === undefined ? [] : [arg], { limit: o.limit as string | undefined, global: o.global === true }),
      ),
    );

  clientOptions(program.command('backfill').description('rebuild a view from raw events, with progress'), ADMIN)
    .option('--view <name>', 'e.g. counts_1m')
    .option('--from <time>', 'e.g. -7d')
    .option('--to <time>', 'e.g. now')
    .option('--rate <n>', 'events per second')
    .option('--no-wait', 'start it and return')
    .option('--json', 'JSON output')
    .action(
      act((o: Opts) =>
        backfillCommand(io(o, ADMIN), { view: o.view as string | undefined, from: o.from as string | undefined, to: o.to as string | undefined, rate: o.rate as string | undefined, wait: o.wait !== false }),
      ),
    );

  clientOptions(program.command('send').description('send NDJSON events (one per line) in batches, with progress; retries keep the idempotency keys'), WRITE)
    .argument('[file]', 'FILE.ndjson, or - for standard input', '-')
    .option('--batch <n>', 'events per request', '500')
    .option('--concurrency <n>', 'requests in flight', '4')
    .action(
      act(async (file: string, o: Opts) => {
        const s = await send({ ...target(o, WRITE), file, batchSize: int(o.batch, 'batch')!, concurrency: int(o.concurrency, 'concurrency')! });
        process.stdout.write(
          `sent ${s.sent}, accepted ${s.accepted}, duplicates ${s.duplicates}, rejected ${s.rejected}` + (s.invalidLines ? `, invalid lines skipped ${s.invalidLines}` : '') + '\n',
        );
        return s.rejected > 0 || s.invalidLines > 0 ? 1 : 0;
      }),
    );

  program
    .command('top')
    .description('a live view of rates, latency, lag, freshness, errors and the conservation gap')
    .addOption(new Option('--url <url>', 'the sluice server').env('SLUICE_URL').default(DEFAULT_URL))
    .option('--interval <seconds>', 'between frames', '2')
    .option('--once', 'print one frame and exit')
    .action(
      act(async (o: Opts) => {
        const interval = Number(o.interval);
        if (!Number.isFinite(interval) || interval <= 0) usage(`--interval must be a positive number of seconds, got "${String(o.interval)}"`);
        await top({ url: o.url as string, intervalMs: interval * 1000, once: o.once === true, out: process.stdout });
        return 0;
      }),
    );
  return program;
}

async function tenantSet(name: string, o: Opts): Promise<number> {
  const patch: Partial<TenantSettings> = {};
  const unknownTypes = o.unknownTypes as string | undefined;
  if (unknownTypes !== undefined) {
    if (!['accept', 'dead-letter', 'reject'].includes(unknownTypes)) usage('--unknown-types must be accept, dead-letter or reject');
    patch.unknownTypes = unknownTypes as UnknownTypes;
  }
  const quota: TenantQuota = {};
  for (const [flag, opt, k] of [['events-per-second', 'eventsPerSecond', 'eventsPerSecond'], ['bytes-per-second', 'bytesPerSecond', 'bytesPerSecond'], ['backlog', 'backlog', 'backlog']] as const) {
    const v = o[opt] as string | undefined;
    if (v === undefined) continue;
    // "default" puts the configured default back.
    const n = v === 'default' ? undefined : int(v, flag);
    if (n !== undefined && n < 0) usage(`--${flag} must be 0 (unlimited) or more, or "default"`);
    quota[k] = n;
  }
  if (patch.unknownTypes === undefined && Object.keys(quota).length === 0) {
    usage('tenant set: name a setting to change, e.g. --unknown-types dead-letter or --events-per-second 5000');
  }
  const catalog = await openCatalog(serverConfig(o));
  try {
    if (Object.keys(quota).length > 0) patch.quota = { ...(await catalog.settings(name)).quota, ...quota };
    const settings = await catalog.updateSettings(name, patch, 'cli');
    const q = settings.quota;
    const show = (v: number | undefined) => (v === undefined ? 'default' : v === 0 ? 'unlimited' : String(v));
    process.stdout.write(
      o.json
        ? JSON.stringify({ tenant: name, settings }) + '\n'
        : `tenant ${name}: unknown types → ${settings.unknownTypes}; events/s ${show(q.eventsPerSecond)}, bytes/s ${show(q.bytesPerSecond)}, backlog ${show(q.backlog)}\n`,
    );
  } finally {
    await catalog.close();
  }
  return 0;
}

const RANK: Record<string, number> = { cli: 3, env: 2, default: 1 };

/** A subcommand's options over its parent's, each from its strongest source (flag, then env, then default). */
function merged(cmd: Command): Opts {
  const out: Opts = {};
  const from: Record<string, number> = {};
  for (const c of [cmd.parent!, cmd]) {
    for (const [k, v] of Object.entries(c.opts())) {
      const rank = RANK[c.getOptionValueSource(k) ?? 'cli'] ?? 3;
      if (v !== undefined && rank >= (from[k] ?? 0)) {
        out[k] = v as Opts[string];
        from[k] = rank;
      }
    }
  }
  return out;
}

const INTERVALS = ['1m', '5m', '15m', '1h', '6h', '1d', 'none'];

/**
 * `sluice query` is the query client, and the query role when given server flags alone
 * (`--log`, `--store`, `--port`…, never a measure or a key).
 */
function addQuery(program: Command, act: <A extends unknown[]>(fn: (...a: A) => Promise<number>) => (...a: A) => Promise<void>): void {
  const query = clientOptions(
    program
      .command('query')
      .description('counts and measures per bucket and group (read key); with server flags only, the query role')
      .addHelpText('after', '\nAs the query role, for scale-out: sluice query --log nats://… --store postgres://… [--port N]\n'),
    READ,
  );
  query
    .option('--event <type>', 'one event type (default: all)')
    .option('--from <time>', 'RFC 3339, now, or relative (-15m, -24h, -7d)', undefined)
    .option('--to <time>', 'same forms', undefined)
    .option('--interval <i>', `${INTERVALS.join('|')} (none: one row per group over the whole range)`)
    .option('--measures <list>', 'count,sum:amount,uniq:key,p95:latency_ms (a bare name is a property)')
    .option('--group-by <fields>', 'up to 3 fields, comma-separated (a bare name is a property)')
    .option('--filter <FIELD:OP[:VALUE]>', 'repeatable: region:eq:eu, amount:gt:10, key:in:a,b', (v: string, prev: string[] = []) => [...prev, v])
    .option('--order-by <cols>', 'e.g. -count')
    .option('--limit <n>', 'rows at most')
    .option('--source <s>', 'auto or raw')
    .option('--csv', 'CSV output')
    .option('--json', 'JSON output');
  // The query role's flags under their own heading: a client wants --url, never --port.
  serverOptions(query.optionsGroup('As the query role (scale-out), with none of the client options above:'));
  const CLIENT = ['event', 'from', 'to', 'interval', 'measures', 'groupBy', 'filter', 'orderBy', 'limit', 'source', 'csv', 'json'];
  const flags = (o: Opts): QueryFlags => ({
    event: o.event as string | undefined,
    type: o.type as string | undefined,
    key: o.eventKey as string | undefined,
    from: o.from as string | undefined,
    to: o.to as string | undefined,
    interval: o.interval as string | undefined,
    measures: o.measures as string | undefined,
    'group-by': o.groupBy as string | undefined,
    filter: o.filter as string[] | undefined,
    'order-by': o.orderBy as string | undefined,
    limit: o.limit as string | undefined,
    cursor: o.cursor as string | undefined,
    source: o.source as string | undefined,
    csv: o.csv === true,
    json: o.json === true,
  });
  const SUBCOMMANDS = ['events', 'event', 'tail', 'views'];
  query.argument('[command]', `${SUBCOMMANDS.join(', ')} (below); none: a query`).usage(`[options] [${SUBCOMMANDS.join('|')}] [arguments]`);
  query.action(
    act(async (given: string | undefined, o: Opts, cmd: Command) => {
      if (given !== undefined) {
        const near = didYouMean(given, SUBCOMMANDS);
        cmd.error(`unknown command '${given}'${near ? `\n(Did you mean ${near}?)` : ''}`, { exitCode: 2, code: 'commander.unknownCommand' });
      }
      const client = CLIENT.some((k) => o[k] !== undefined) || cmd.getOptionValueSource('key') === 'cli';
      const server = SERVER_FLAGS.some((k) => o[k] !== undefined);
      if (!client && (server || !o.key)) return serve(serverConfig(o), ['query']);
      if (o.interval !== undefined && !INTERVALS.includes(o.interval as string)) usage(`--interval must be one of ${INTERVALS.join(', ')}, got "${String(o.interval)}"`);
      return queryCommand(target(o, READ), undefined, [], flags(o), process.stdout, process.stderr);
    }),
  );
  // Subcommands: their own flags, and the parent's --url/--key when given before them.
  const sub = (name: string, description: string, args: string[], keyWhat = READ) => {
    const c = query.command(name).description(description);
    for (const a of args) c.argument(a);
    return clientOptions(c, keyWhat).option('--json', 'JSON output');
  };
  const run = (name: string, nargs: number, keyWhat = READ) =>
    act(async (...a: unknown[]) => {
      const cmd = a[nargs + 1] as Command;
      const o = merged(cmd);
      return queryCommand(target(o, keyWhat), name, a.slice(0, nargs).filter((x) => x !== undefined) as string[], flags(o), process.stdout, process.stderr);
    });
  sub('events', 'stored events, newest first', [])
    .option('--type <type>', 'event type')
    .option('--event-key <key>', "the events' key")
    .option('--from <time>', 'e.g. -7d')
    .option('--to <time>', 'e.g. now')
    .option('--limit <n>', 'per page (default 100)')
    .option('--cursor <c>', 'next page')
    .action(run('events', 0));
  sub('event', 'where one event is: stored, dead-lettered, in the log, or unknown', ['<idempotency-key>']).action(run('event', 1));
  sub('tail', 'live events as they are accepted (Ctrl-C stops)', []).option('--type <type>', 'event type').action(run('tail', 0));
  sub('views', 'list views; put NAME FILE.json, show NAME, delete NAME (put and delete: admin key)', ['[action]', '[name]', '[file]']).action(run('views', 3));
}

export { ALL_ROLES };
