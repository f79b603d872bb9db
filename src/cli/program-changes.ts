import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { SluiceError } from '../core/errors.js';
import { alertsCommand, ALERTS_USAGE } from './alerts.js';
import { openCatalog } from '../backends/registry.js';
import type { Catalog } from '../ports/catalog.js';
import { ADMIN, clientOptions, io, READ, serverConfig, target, type Act, type Opts } from './grammar.js';
import { operatorPipelineCommand, operatorRolloutCommand } from './operator.js';
import { pipelineCommand, PIPELINE_USAGE } from './pipeline.js';
import { rolloutCommand } from './rollout.js';

/** `sluice alerts …`, `sluice pipeline …` and `sluice rollout …`: clients of a running server. */
export function addChangeCommands(program: Command, act: Act): void {
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
      .description("the tenant's transform pipeline (admin key): show, push a new version, test over events, list versions; --global: the operator pipeline, on the catalog")
      .argument('<sub>', 'show, push, test or versions')
      .argument('[file]', 'the pipeline document (push, test)')
      .addHelpText('after', `\n${PIPELINE_USAGE}`),
    ADMIN,
  )
    .option('--version <n>', 'a stored version (show, test)')
    .option('--expected-version <n>', 'push: only if the current version is this one (compare-and-set)')
    .option('--no-activate', 'push: store the version without making it live (a candidate to roll out: sluice rollout create)')
    .option('--events <file>', 'test: a JSON array of events')
    .option('--sample <type>', 'test: the last stored events of this type')
    .option('--last <n>', 'test: how many (with --sample)')
    .option('--limit <n>', 'versions: at most')
    .option('--json', 'JSON output')
    .option('--global', 'the operator pipeline (run for every tenant before its own steps), on the catalog: show, push, versions')
    .option('--data-dir <dir>', '--global: where the embedded catalog lives (SLUICE_DATA_DIR; default ./data)')
    .option('--config <file>', '--global: a JSON configuration file (SLUICE_CONFIG)')
    .option('--catalog <url>', '--global: embedded, or postgres://USER@HOST/DB[?schema=S] (SLUICE_CATALOG_URL)')
    .action(
      act(async (sub: string, file: string | undefined, o: Opts) => {
        if (o.global === true) {
          return onCatalog(o, (catalog) =>
            operatorPipelineCommand(catalog, sub, file, { version: o.version as string | undefined, limit: o.limit as string | undefined, expectedVersion: o.expectedVersion as string | undefined, activate: o.activate !== false }, ioOf(o)),
          );
        }
        const { url, key } = target(o, ADMIN);
        const flags: [string, unknown][] = [
          ['--version', o.version],
          ['--expected-version', o.expectedVersion],
          ['--events', o.events],
          ['--sample', o.sample],
          ['--last', o.last],
          ['--limit', o.limit],
        ];
        const argv = [sub, ...(file === undefined ? [] : [file]), '--url', url, '--key', key, ...(o.json ? ['--json'] : []), ...(o.activate === false ? ['--no-activate'] : [])];
        for (const [flag, v] of flags) if (v !== undefined) argv.push(flag, String(v));
        return pipelineCommand(argv);
      }),
    );

  clientOptions(
    program
      .command('rollout')
      .description('safe rollouts of a change (admin key): shadow, compare, cohort and guarded ramp, with recorded decisions and rollback; --global: operator-wide, over tenants, on the catalog')
      .argument('<sub>', 'list, show, diff, create, advance, pause, resume, abort or promote')
      .argument('[arg]', 'the rollout id, or the rollout document (create: FILE.json, - for standard input)'),
    ADMIN,
  )
    .option('--limit <n>', 'diff: samples at most')
    .option('--global', 'operator-wide rollouts (of the operator pipeline or the enrichment, over tenants), on the catalog: no key, --data-dir or --catalog instead')
    .option('--data-dir <dir>', '--global: where the embedded catalog lives (SLUICE_DATA_DIR; default ./data)')
    .option('--config <file>', '--global: a JSON configuration file (SLUICE_CONFIG)')
    .option('--catalog <url>', '--global: embedded, or postgres://USER@HOST/DB[?schema=S] (SLUICE_CATALOG_URL)')
    .option('--json', 'JSON output')
    .action(
      act(async (sub: string, arg: string | undefined, o: Opts) => {
        if (o.global === true) return onCatalog(o, (catalog) => operatorRolloutCommand(catalog, sub, arg, { limit: o.limit as string | undefined }, ioOf(o), () => Date.now()));
        return rolloutCommand(io(o, ADMIN), sub, arg === undefined ? [] : [arg], { limit: o.limit as string | undefined });
      }),
    );
}

/** Opens the catalog as `sluice tenant create` does, runs `fn`, closes it. */
async function onCatalog(o: Opts, fn: (catalog: Catalog) => Promise<number>): Promise<number> {
  const config = serverConfig(o);
  // An embedded catalog that is not there is a wrong --data-dir, not a new deployment: opening
  // it would create an empty one, and a push would go where no server reads it.
  const file = path.resolve(config.dataDir, 'sluice.db');
  if (config.catalog.url === 'embedded' && !fs.existsSync(file)) {
    throw new SluiceError('SLUICE_ERR_CONFIG', `no catalog at ${file}: pass --data-dir (or SLUICE_DATA_DIR) with the directory "sluice up" uses, or --catalog postgres://… for a PostgreSQL catalog`, { field: 'dataDir' });
  }
  const catalog = await openCatalog(config);
  try {
    return await fn(catalog);
  } finally {
    await catalog.close();
  }
}

function ioOf(o: Opts) {
  return { out: process.stdout, err: process.stderr, json: o.json === true };
}
