import type { Command } from 'commander';
import { serve } from './serve.js';
import { didYouMean } from '../query/warnings.js';
import { clientOptions, merged, READ, SERVER_FLAGS, serverConfig, serverOptions, target, usage, type Act, type Opts } from './grammar.js';
import { queryCommand, type QueryFlags } from './query.js';

const INTERVALS = ['1m', '5m', '15m', '1h', '6h', '1d', 'none'];

/**
 * `sluice query` is the query client, and the query role when given server flags alone
 * (`--log`, `--store`, `--port`…, never a measure or a key).
 */
export function addQuery(program: Command, act: Act): void {
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

