import fs from 'node:fs';
import { Command, Option, type OutputConfiguration } from 'commander';
import { ALL_ROLES, type Role } from '../app/roles.js';
import { serve } from './serve.js';
import { backfillCommand } from './admin.js';
import { doctor, formatFindings } from './doctor.js';
import { ADMIN, clientOptions, DEFAULT_URL, int, io, serverConfig, serverOptions, target, usage, WRITE, type Opts } from './grammar.js';
import { addChangeCommands } from './program-changes.js';
import { addQuery } from './program-query.js';
import { addRegistryCommands } from './program-registry.js';
import { addTenantCommands } from './program-tenants.js';
import { send } from './send.js';
import { top } from './top.js';

/**
 * The command line's grammar, on commander: every command has `--help`, the program has
 * `--version`, a misspelled command or flag gets a "did you mean". Client commands share
 * `--url`/`--key` (with SLUICE_URL/SLUICE_KEY), commands that open the data directory share
 * `--data-dir` and the other server flags (grammar.ts). This file holds the roles and the
 * top-level commands; each group of commands is added by its own file (program-query.ts,
 * program-tenants.ts, program-registry.ts, program-changes.ts). The commands' work lives in
 * the sibling modules; these files only read the flags and call them.
 */

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

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

  serverOptions(program.command('doctor').description('check the backends a configuration names and their durability settings; exit 1 on a failure'), { listens: false })
    .option('--json', 'JSON output')
    .action(
      act(async (o: Opts) => {
        const findings = await doctor(serverConfig(o));
        process.stdout.write((o.json ? JSON.stringify({ findings }) : formatFindings(findings)) + '\n');
        return findings.some((f) => f.level === 'fail') ? 1 : 0;
      }),
    );

  addQuery(program, act);
  addTenantCommands(program, act);
  addRegistryCommands(program, act);
  addChangeCommands(program, act);

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

export { ALL_ROLES, DEFAULT_URL };
