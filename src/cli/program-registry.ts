import type { Command } from 'commander';
import { dlqCommand, schemaCommand } from './admin.js';
import { ADMIN, clientOptions, io, type Act, type Opts } from './grammar.js';

/** `sluice schema …` (the schema registry) and `sluice dlq …` (dead letters): clients of a running server. */
export function addRegistryCommands(program: Command, act: Act): void {
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
      .option('--status <list>', "the entries' status: open,held,replayed,discarded")
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
  dlqSub('groups', 'dead letters by error signature', [], (c) => filters(c).option('--group-status <list>', "the groups' own status: open,acknowledged,resolved,ignored"));
  dlqSub('show', 'one dead letter', ['<idempotency-key>'], (c) => c);
  dlqSub('replay', 'replay through the live path with the original keys (twice changes nothing)', [], (c) =>
    filters(c)
      .option('--rate <n>', 'events per second')
      .option('--dry-run', 'count only, and predict what would pass or fail')
      .option('--patch <file>', 'transform steps ({"steps": [...]}, JSON) applied to each entry before re-validation'),
  );
  dlqSub('discard', 'discard, with a reason kept in the audit log', [], (c) => filters(c).option('--why <text>', 'the reason (required)'));
  dlqSub('group', "a group's lifecycle: its status (open, acknowledged, resolved, ignored), owner and history", ['<signature>'], (c) =>
    c.option('--set <status>', 'acknowledged, resolved, ignored or open').option('--owner <team>', 'who works on it').option('--note <text>', "kept in the group's history"),
  );
}
