import { expect, it } from 'vitest';
import { flagFor } from '../../src/cli/field-flags.js';
import { buildProgram } from '../../src/cli/program.js';

it('cli.an-http-error-naming-a-request-field-names-the-flag-of-the-running-command', () => {
  const program = buildProgram(() => undefined);
  const cases: [string[], string, string | null][] = [
    [['pipeline', 'push', 'steps.json', '--expected-version', '3'], 'expected_version', '--expected-version'],
    [['dlq', 'group', 'SIG', '--set', 'bogus'], 'status', '--set'],
    [['query', 'checkout', '--group-by', 'a,b,c,d'], 'group_by', '--group-by'],
    [['schema', 'push', 'checkout', 'v2.json', '--force'], 'reason', '--reason'],
    [['dlq', 'groups', '--group-status', 'nope'], 'group_status', '--group-status'],
    // A field no flag of the command sets: no hint (the server's message stands alone).
    [['send', 'events.ndjson'], 'Authorization', null],
    [['schema', 'push', 'checkout', 'v2.json'], 'schema', null],
  ];
  for (const [argv, field, flag] of cases) expect(flagFor(program, argv, field), `${argv.join(' ')} / ${field}`).toBe(flag);
});
