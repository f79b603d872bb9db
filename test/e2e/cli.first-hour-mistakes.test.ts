import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError, type Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { cliCommand } from '../../src/config/load.js';
import { CLI, freePort, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * The mistakes of a first hour with the CLI, each answered in one line that says what to do:
 * a misspelled command or flag, a server that is not there, a missing file, a wrong key;
 * and the grammar around them (--help everywhere, --version, bare property names).
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function sluice(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, SLUICE_URL: '', SLUICE_KEY: '', ...env }, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every command path of the program: ['query'], ['query', 'events'], … */
function paths(c: Command, prefix: string[] = []): string[][] {
  return c.commands.flatMap((s) => [[...prefix, s.name()], ...paths(s, [...prefix, s.name()])]);
}

const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at /);

describe('the grammar', () => {
  it('cli.every-command-has-help-and-the-program-a-version', async () => {
    const all = paths(buildProgram(() => undefined));
    expect(all.map((p) => p.join(' '))).toEqual(
      expect.arrayContaining(['up', 'send', 'query', 'query events', 'query views', 'key create', 'key revoke', 'tenant create', 'schema push', 'dlq replay', 'backfill', 'top', 'doctor']),
    );
    for (const p of all) {
      let out = '';
      const program = buildProgram(() => undefined, { writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
      const done = await program.parseAsync([...p, '--help'], { from: 'user' }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(done, p.join(' ')).toBeInstanceOf(CommanderError);
      expect((done as CommanderError).exitCode).toBe(0);
      expect(out).toContain(`Usage: sluice ${p.join(' ')}`);
    }
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(sluice(['--version']).stdout.trim()).toBe(pkg.version);
  });

  it('cli.misspelled-commands-and-flags-get-a-did-you-mean', () => {
    const command = sluice(['qurey']);
    expect(command.status).toBe(2);
    expect(command.stderr).toContain("sluice: unknown command 'qurey'\n(Did you mean query?)");
    const sub = sluice(['query', 'evnts', '--key', 'k']);
    expect(sub.status).toBe(2);
    expect(sub.stderr).toContain('(Did you mean events?)');
    const flag = sluice(['query', '--key', 'k', '--intreval', '1h']);
    expect(flag.status).toBe(2);
    expect(flag.stderr).toContain("sluice: unknown option '--intreval'\n(Did you mean --interval?)");
    const interval = sluice(['query', '--key', 'k', '--interval', 'hourly']);
    expect(interval.status).toBe(2);
    expect(interval.stderr).toBe('sluice: --interval must be one of 1m, 5m, 15m, 1h, 6h, 1d, none, got "hourly"\n');
    const scope = sluice(['key', 'create', 'default', '--scope', 'raed']);
    expect(scope.status).toBe(2);
    expect(scope.stderr).toContain('Allowed choices are write, read, admin, schema');
    for (const r of [command, sub, flag, interval, scope]) noStack(r.stderr);
  });

  it('cli.every-command-its-messages-suggest-exists', () => {
    const program = buildProgram(() => undefined);
    const known = new Set(paths(program).map((p) => p.join(' ')));
    // "sluice" followed by a word that is not a command: prose ("sluice is up", "sluice has").
    const PROSE = new Set(['is', 'will', 'server', 'with', 'producer', 'process', 'log', 'knows', 'has', 'events', 'event', 'did', 'cannot', 'can', 'calls', 'at', 'as', 'runs', 'reads', 'creates', 'dedupes', 'never', 'uses', 'too', 'refuses', 'console', 'already', 'keeps', 'on']);
    const files = (dir: string): string[] =>
      fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(path.join(dir, d.name)) : d.name.endsWith('.ts') ? [path.join(dir, d.name)] : []));
    const checked: string[] = [];
    const wrong: string[] = [];
    for (const file of files(path.join(ROOT, 'src'))) {
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/\bsluice ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)/g)) {
        const words = m[1]!.split(' ');
        if (PROSE.has(words[0]!)) continue;
        checked.push(m[1]!);
        if (!known.has(words[0]!)) {
          wrong.push(`${path.relative(ROOT, file)}: sluice ${m[1]}`);
          continue;
        }
        const cmd = program.commands.find((c) => c.name() === words[0])!;
        // A second word names a subcommand when the command has some; a leaf command takes
        // arguments in upper case or flags, so a lower-case word after it is a wrong suggestion.
        if (words[1] !== undefined && cmd.commands.length > 0 && !known.has(words.join(' '))) wrong.push(`${path.relative(ROOT, file)}: sluice ${m[1]}`);
        if (words[1] !== undefined && cmd.commands.length === 0 && cmd.registeredArguments.length === 0 && !['on', 'and', 'or', 'runs', 'run'].includes(words[1])) {
          wrong.push(`${path.relative(ROOT, file)}: sluice ${m[1]}`);
        }
      }
    }
    expect(checked.length).toBeGreaterThan(20);
    expect(wrong).toEqual([]);
  });
});

describe('without a server', () => {
  it('cli.a-refused-connection-says-where-it-looked-and-exits-at-once', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const dir = tmpDir();
    const file = path.join(dir, 'events.ndjson');
    fs.writeFileSync(file, '{"type":"a"}\n');
    const expected = `sluice: cannot reach sluice at ${url}: is it running? (--url, SLUICE_URL)\n`;
    for (const args of [['send', '--key', 'k', file], ['query', '--key', 'k'], ['query', 'events', '--key', 'k'], ['top', '--once'], ['schema', 'list', '--key', 'k']]) {
      const r = sluice(args, { SLUICE_URL: url });
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toBe(expected);
      expect(r.stdout).toBe('');
    }
  });

  it('cli.a-missing-file-or-key-is-one-line-that-says-what-to-do', () => {
    const missing = sluice(['send', '--key', 'k', 'nope.ndjson']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toBe('sluice: cannot read nope.ndjson: no such file (name an NDJSON file, one event per line, or - for standard input)\n');
    const noKey = sluice(['send', 'x.ndjson']);
    expect(noKey.status).toBe(2);
    expect(noKey.stderr).toBe('sluice: --key is required (or set SLUICE_KEY): a write key (sluice_w_…)\n');
  });
});

describe('against a running server', () => {
  let server: ServerProcess;
  let keys: { write: string; read: string; admin: string };
  beforeAll(async () => {
    server = await startServer(tmpDir(), await freePort());
    const key = (scope: string) => new RegExp(`${scope} key:\\s+(\\S+)`).exec(server.stdout)![1]!;
    keys = { write: key('write'), read: key('read'), admin: key('admin') };
  });
  afterAll(async () => {
    await stop(server);
  });

  it('cli.a-wrong-key-is-one-line-that-says-which-key-to-use', () => {
    const r = sluice(['query', '--key', 'sluice_r_0000000000000000_nope'], { SLUICE_URL: server.url });
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(r.stderr).toMatch(/^sluice: 401 SLUICE_ERR_UNAUTHORIZED: .*\(check --key or SLUICE_KEY: .*"(npx )?sluice key create TENANT --scope …" issues another\)\n$/);
    expect(r.stderr).toContain(`"${cliCommand()} key create`);
    const file = path.join(tmpDir(), 'one.ndjson');
    fs.writeFileSync(file, '{"type":"a"}\n');
    const wrongScope = sluice(['send', '--key', keys.read, file], { SLUICE_URL: server.url });
    expect(wrongScope.stderr).toMatch(/^sluice: 403 SLUICE_ERR_FORBIDDEN: .*send needs a write key/);
  });

  it('send.reports-the-line-of-a-rejected-event-after-skipped-lines-and-counts-events', () => {
    const file = path.join(tmpDir(), 'mixed.ndjson');
    const ts = new Date().toISOString();
    fs.writeFileSync(
      file,
      [
        `{"type":"signup","key":"u1","ts":"${ts}"}`,
        '',
        'not json',
        `{"type":"signup","key":"u2","ts":"${ts}"}`,
        '{"key":"no-type"}',
        `{"type":"signup","key":"u3","ts":"${ts}"}`,
      ].join('\n') + '\n',
    );
    const r = sluice(['send', '--key', keys.write, '--batch', '10', file], { SLUICE_URL: server.url });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('sent 4, accepted 3, duplicates 0, rejected 1, invalid lines skipped 1\n');
    expect(r.stderr).toContain('line 3: not valid JSON; skipped');
    expect(r.stderr).toContain('line 5: rejected at /type:');
    expect(r.stderr).toMatch(/100%\s+4 events/);
  });

  it('send.a-batch-over-the-servers-body-limit-is-sent-in-halves-with-the-same-keys', () => {
    // 40 events of about 30 KB: a batch of 500 is over the 1 MiB body limit (413).
    const file = path.join(tmpDir(), 'large.ndjson');
    const pad = 'x'.repeat(30_000);
    fs.writeFileSync(file, Array.from({ length: 40 }, (_, i) => JSON.stringify({ type: 'large', key: `u${i}`, idempotency_key: `large-${i}`, properties: { pad } })).join('\n') + '\n');
    const r = sluice(['send', '--key', keys.write, file], { SLUICE_URL: server.url });
    expect(r.stdout).toBe('sent 40, accepted 40, duplicates 0, rejected 0\n');
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("is over the server's body limit; sending it in two halves (a smaller --batch avoids this)");
    // Sent again: every key was kept, so nothing is counted twice.
    const again = sluice(['send', '--key', keys.write, file], { SLUICE_URL: server.url });
    expect(again.stdout).toBe('sent 40, accepted 0, duplicates 40, rejected 0\n');
  });

  it('send.an-event-over-a-size-limit-is-a-rejected-line-and-the-rest-of-the-file-is-sent', () => {
    // Line 3 is over the 1 MiB body limit on its own, line 5 over the 32 KiB event limit: each
    // is refused (413) whatever the batch. They are rejected lines: the other events of their
    // batch and of the file are sent and counted, so the summary says what got in (a send that
    // stopped there printed no counts, and sending the file again doubled what had got in).
    const file = path.join(tmpDir(), 'one-too-large.ndjson');
    const pad = (i: number) => 'x'.repeat(i === 2 ? 1_200_000 : i === 4 ? 40_000 : 10);
    fs.writeFileSync(file, Array.from({ length: 6 }, (_, i) => JSON.stringify({ type: 'large', key: `u${i}`, idempotency_key: `too-large-${i}`, properties: { pad: pad(i) } })).join('\n') + '\n');
    const r = sluice(['send', '--key', keys.write, file], { SLUICE_URL: server.url });
    expect(r.stdout).toBe('sent 6, accepted 4, duplicates 0, rejected 2\n');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/line 3: rejected: 413 SLUICE_ERR_BODY_TOO_LARGE: /);
    expect(r.stderr).toMatch(/line 5: rejected: 413 SLUICE_ERR_EVENT_TOO_LARGE: /);
    expect(r.stderr).toContain("an event of the batch of lines 4-6 is over the server's event size limit; sending it in two halves to find it");
    const again = sluice(['send', '--key', keys.write, file], { SLUICE_URL: server.url });
    expect(again.stdout).toBe('sent 6, accepted 0, duplicates 4, rejected 2\n');
  });

  it('query.bare-property-names-in-filter-and-group-by-and-warnings-printed', async () => {
    const ts = new Date().toISOString();
    const events = [1, 2, 3].map((i) => ({ type: 'checkout', key: `u${i}`, ts, idempotency_key: `bare-${i}`, properties: { region: i === 1 ? 'eu' : 'us', amount: i * 10 } }));
    const res = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${keys.write}` }, body: JSON.stringify(events) });
    expect(res.status).toBe(202);
    const env = { SLUICE_URL: server.url, SLUICE_KEY: keys.read };
    let answer: { columns: string[]; rows: unknown[][] } = { columns: [], rows: [] };
    for (const end = Date.now() + 20_000; Date.now() < end && answer.rows.length < 2; await new Promise((r) => setTimeout(r, 200))) {
      answer = JSON.parse(sluice(['query', '--event', 'checkout', '--from', '-1h', '--interval', 'none', '--group-by', 'region', '--filter', 'amount:gte:10', '--order-by', 'properties.region', '--json'], env).stdout);
    }
    expect(answer.columns).toEqual(['properties.region', 'count']);
    expect(answer.rows).toEqual([['eu', 1], ['us', 2]]);
    const typo = sluice(['query', '--event', 'chekout', '--from', '-1h', '--interval', 'none'], env);
    expect(typo.status).toBe(0);
    expect(typo.stderr).toBe('warning: no events of type "chekout" in the last 30 days; did you mean "checkout"?\n');
  });
});
