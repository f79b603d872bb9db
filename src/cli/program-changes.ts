import type { Command } from 'commander';
import { alertsCommand, ALERTS_USAGE } from './alerts.js';
import { ADMIN, clientOptions, io, READ, target, type Act, type Opts } from './grammar.js';
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
}
