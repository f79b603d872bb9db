import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { CLI, freePort, kill9, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * The README, run as a newcomer runs it: every ```sh block, in order, in a fresh directory,
 * against a fresh `sluice up` on a free port (`localhost:8080` and `127.0.0.1:8080` become
 * its address, `npx sluice` the CLI of this checkout, W/R/A the keys its banner prints).
 *
 * A block is a list of steps: command lines, then the `# ` lines right below them, which are
 * the output the README shows. That output must appear in what the step prints (stderr then
 * stdout), compared without whitespace, with `…` matching anything and every timestamp any
 * timestamp. A step that shows no output must exit 0. A read-only step (a query) is retried
 * for a while, as a reader would: the answer may lag the send by the watermark.
 *
 * Markers in the README (HTML comments, not rendered): `<!-- readme-test: skip … -->` before a
 * block leaves it out; `<!-- readme-test: kill -9 and restart the server here -->` kills the
 * server with SIGKILL and starts it again on the same data directory before the next block.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

interface Block {
  lang: string;
  marker: string | null;
  lines: string[];
}

function blocks(text: string): Block[] {
  const out: Block[] = [];
  let marker: string | null = null;
  let current: Block | null = null;
  for (const line of text.split('\n')) {
    if (current) {
      if (line.startsWith('```')) {
        out.push(current);
        current = null;
      } else current.lines.push(line);
      continue;
    }
    const m = /^<!-- readme-test: (.*) -->$/.exec(line);
    if (m) marker = m[1]!;
    else if (line.startsWith('```')) {
      current = { lang: line.slice(3).trim(), marker, lines: [] };
      marker = null;
    } else if (line.trim() !== '') marker = null;
  }
  return out;
}

interface Step {
  command: string[];
  expected: string[];
}

function steps(lines: string[]): Step[] {
  const out: Step[] = [];
  let step: Step | null = null;
  const end = () => {
    if (step && step.command.length > 0) out.push(step);
    step = null;
  };
  for (const line of lines) {
    if (line.trim() === '') {
      end();
      continue;
    }
    if (line.startsWith('#')) {
      // Below a command: its output. Before one: a description.
      if (step?.command.length) step.expected.push(line.replace(/^# ?/, ''));
      continue;
    }
    // The placeholders the reader replaces with the keys the banner printed.
    if (/^export [WRA]=sluice_[wra]_…/.test(line)) continue;
    if (step?.expected.length) end();
    step ??= { command: [], expected: [] };
    step.command.push(line);
  }
  end();
  return out;
}

const TIME = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/g;
const KEY = /sluice_[wra]_[0-9a-f]{16}_[\w-]+(?:…)?/g;
/** Ids of builds and backfills (12 hex digits): any stands for any. */
const ID = /\b[0-9a-f]{12}\b/g;

function normalize(s: string): string {
  return s.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(TIME, '\u0001').replace(KEY, '\u0002').replace(ID, '\u0003').replace(/\s+/g, '');
}

/** The README's output as a pattern: `…` matches anything. */
function pattern(expected: string[]): RegExp {
  const text = normalize(expected.join('\n'));
  return new RegExp(text.split('…').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\s\\S]*?'));
}

let server: ServerProcess | null = null;
afterAll(async () => {
  if (server) await stop(server);
});

it('readme.tour-runs-as-written-and-shows-the-outputs-it-claims', { timeout: 240_000 }, async () => {
  const dataDir = tmpDir('sluice-readme-data-');
  const work = tmpDir('sluice-readme-work-');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  server = await startServer(dataDir, port);

  // The banner the README shows, with this run's directory, port and pid.
  const all = blocks(README);
  const banner = all.find((b) => b.lines[0]?.startsWith('$ npm install && npm start'))!;
  expect(banner).toBeDefined();
  for (const line of banner.lines.slice(1)) {
    if (line.trim() === '' || line.trim() === '…') continue;
    const mine = line
      .replaceAll('http://127.0.0.1:8080', url)
      .replace('data in ./data', `data in ${dataDir}`)
      .replace(/kill \d+ \(pid \d+;/, `kill ${server.child.pid} (pid ${server.child.pid};`);
    expect(normalize(server.stdout), line).toMatch(pattern([mine]));
  }
  const key = (scope: string) => new RegExp(`${scope} key:\\s+(\\S+)`).exec(server!.stdout)![1]!;
  const state = path.join(work, '.state.sh');
  fs.writeFileSync(state, '');
  const env = {
    ...process.env,
    W: key('write'),
    R: key('read'),
    A: key('admin'),
    SLUICE_URL: url,
    SLUICE_KEY: '',
    // `npm start` in the checkout uses ./data: the CLI's tenant and key commands find it there.
    SLUICE_DATA_DIR: dataDir,
    README_TEST_CLI: CLI,
  };
  const prelude = `npx() { if [ "$1" = sluice ]; then shift; node "$README_TEST_CLI" "$@"; else command npx "$@"; fi; }\nsource ${state} 2>/dev/null\n`;

  const run = (command: string) => {
    const script = `${prelude}{\n${command}\n}\nrc=$?\nexport -p > ${state}\nexit $rc\n`;
    const r = spawnSync('bash', ['-c', script], { cwd: work, env, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, output: `${r.stderr}${r.stdout}` };
  };

  let ran = 0;
  for (const block of all) {
    if (block.lang !== 'sh') continue;
    if (block.marker?.startsWith('skip')) continue;
    if (block.marker?.startsWith('kill -9 and restart')) {
      await kill9(server);
      server = await startServer(dataDir, port);
      expect(server.stdout).toContain('Tenant "default" exists; its keys were printed when it was created.');
    }
    for (const step of steps(block.lines)) {
      const command = step.command.join('\n').replaceAll('localhost:8080', `127.0.0.1:${port}`).replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`);
      const readOnly = /sluice query|\/v1\/query|dlq groups|dlq list|\/v1\/status/.test(command);
      let r = run(command);
      ran++;
      if (step.expected.length === 0) {
        expect(r.status, `${command}\n${r.output}`).toBe(0);
        continue;
      }
      const want = pattern(step.expected);
      for (const end = Date.now() + 20_000; readOnly && !want.test(normalize(r.output)) && Date.now() < end; ) {
        await new Promise((res) => setTimeout(res, 300));
        r = run(command);
      }
      expect(normalize(r.output), `${command}\n--- printed:\n${r.output}\n--- the README shows:\n${step.expected.join('\n')}`).toMatch(want);
    }
  }
  expect(ran).toBeGreaterThan(15);
});
