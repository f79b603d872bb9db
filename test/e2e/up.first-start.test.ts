import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cliCommand } from '../../src/config/load.js';
import { resolveLogFormat } from '../../src/obs/logger.js';
import { CLI, freePort } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * A first start as a newcomer sees it: a busy port fails before anything is created (so the
 * keys of the default tenant are never lost), start-up logs one line per fact, no deprecation
 * warning, and the banner with the keys, the pid and how to stop comes last.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Starts `sluice up` with stdout and stderr in one file, in the order written; resolves when the banner is complete. */
async function upInOrder(dir: string, port: number, env: Record<string, string> = {}): Promise<{ pid: number; output: () => string; stop: () => Promise<void> }> {
  const log = path.join(dir, 'out.txt');
  const fd = fs.openSync(log, 'w');
  const child = spawn(process.execPath, [CLI, 'up', '--data-dir', dir, '--port', String(port)], { env: { ...process.env, SLUICE_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const output = () => fs.readFileSync(log, 'utf8');
  for (const end = Date.now() + 30_000; !output().includes('Stop: '); await new Promise((r) => setTimeout(r, 50))) {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`sluice up did not start: ${output()}`);
  }
  return {
    pid: child.pid!,
    output,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('the first start', () => {
  it('up.a-busy-port-fails-before-the-default-tenant-is-created-and-says-what-to-do', async () => {
    const dir = tmpDir();
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const r = spawnSync(process.execPath, [CLI, 'up', '--data-dir', dir, '--port', String(port)], { env: { ...process.env, SLUICE_LOG_LEVEL: 'warn' }, encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toBe(`sluice: 127.0.0.1:${port} is in use (another sluice, or another server): stop it, or pick another port with --port ${port + 1} (or SLUICE_PORT)\n`);
      expect(r.stdout).toBe('');
    } finally {
      busy.close();
    }
    // Nothing was created: the next start creates the default tenant and shows its keys.
    const up = await upInOrder(dir, await freePort());
    try {
      expect(up.output()).toContain('Created the tenant "default". Its keys are shown this once; keep them:');
      expect(up.output()).toMatch(/admin key: sluice_a_/);
    } finally {
      await up.stop();
    }
    // Started again: the keys are not shown again, and the banner says how to issue new ones.
    const again = await upInOrder(dir, await freePort());
    try {
      expect(again.output()).toContain('Tenant "default" exists; its keys were printed when it was created.');
      // `npx sluice` when run through npm (as the tests are), `sluice` from the PATH: see cliCommand.
      expect(again.output()).toContain(`Lost them? Issue new ones: ${cliCommand()} key create default --scope write --data-dir ${dir}   (or --scope read, --scope admin)`);
    } finally {
      await again.stop();
    }
    // That command exists and works on the data directory.
    const key = spawnSync(process.execPath, [CLI, 'key', 'create', 'default', '--scope', 'read', '--data-dir', dir], { encoding: 'utf8', timeout: 30_000 });
    expect(key.status).toBe(0);
    expect(key.stdout).toMatch(/^read key: sluice_r_\S+\n\(shown this once\)\n$/);
  });

  it('up.a-catalog-that-has-tenants-gets-no-default-tenant-and-the-banner-names-its-tenants', async () => {
    const dir = tmpDir();
    // A tenant made before the first start (or a catalog shared on PostgreSQL that has some).
    expect(spawnSync(process.execPath, [CLI, 'tenant', 'create', 'acme', '--data-dir', dir], { encoding: 'utf8', timeout: 30_000 }).status).toBe(0);
    const up = await upInOrder(dir, await freePort());
    try {
      expect(up.output()).not.toContain('Created the tenant "default"');
      expect(up.output()).toContain('Tenants: acme; their keys were printed when each was created.');
      expect(up.output()).toContain(`Lost them? Issue new ones: ${cliCommand()} key create acme --scope write --data-dir ${dir}`);
    } finally {
      await up.stop();
    }
    // No tenant "default" was made: a key for it is refused.
    const key = spawnSync(process.execPath, [CLI, 'key', 'create', 'default', '--scope', 'read', '--data-dir', dir], { encoding: 'utf8', timeout: 30_000 });
    expect(key.status, key.stdout).not.toBe(0);
  });

  it('up.logs-one-line-per-fact-no-deprecation-and-the-banner-last-with-pid-and-stop', async () => {
    const dir = tmpDir();
    const up = await upInOrder(dir, await freePort());
    try {
      // Give late start-up lines the time to land after the banner, if any would.
      await new Promise((r) => setTimeout(r, 1_500));
      const lines = up.output().trimEnd().split('\n');
      expect(lines.at(-1), up.output()).toBe(`Stop: Ctrl-C, or kill ${up.pid} (pid ${up.pid}; drains, nothing is lost)`);
      const logs = lines.filter((l) => l.startsWith('{'));
      const bannerAt = lines.findIndex((l) => l.startsWith('sluice is up on '));
      expect(bannerAt).toBeGreaterThan(0);
      // Every log line is before the banner.
      expect(lines.slice(bannerAt).filter((l) => l.startsWith('{'))).toEqual([]);
      const msgs = logs.map((l) => (JSON.parse(l) as { msg: string }).msg);
      expect(msgs.filter((m) => m === 'leases changed')).toHaveLength(1);
      expect(msgs).not.toContain('lease taken');
      expect(new Set(msgs).size).toBe(msgs.length);
      const leases = JSON.parse(logs[msgs.indexOf('leases changed')]!) as { taken: number[] };
      expect(leases.taken).toEqual(Array.from({ length: 16 }, (_, i) => i));
      expect(up.output()).not.toMatch(/Deprecation|DeprecationWarning|ExperimentalWarning/);
    } finally {
      await up.stop();
    }
  });

  it('up.logs-readable-lines-with-log-format-pretty-from-both-threads-and-json-lines-otherwise', async () => {
    const dir = tmpDir();
    // Not a terminal here, so auto (the default) is JSON, as the test above reads; pretty is asked for.
    const up = await upInOrder(dir, await freePort(), { SLUICE_LOG_FORMAT: 'pretty' });
    try {
      const lines = up.output().trimEnd().split('\n');
      const logs = lines.slice(0, lines.findIndex((l) => l.startsWith('sluice is up on ')));
      expect(logs.filter((l) => l.startsWith('{'))).toEqual([]);
      // pino-pretty's single line: time, level, logger name (the HTTP thread's, the store thread's), message, fields.
      expect(logs).toContainEqual(expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(sluice\): Server listening at http:\/\/127\.0\.0\.1:\d+ \{"component":"http"\}$/));
      expect(logs).toContainEqual(expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(sluice-worker\): leases changed \{"owner":"[^"]+","taken":\[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\],"lost":\[\]\}$/));
    } finally {
      await up.stop();
    }
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat('auto', false)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
  });

  it('start.does-not-rebuild-when-nothing-changed', () => {
    // npm start runs "prestart": npm run build, an incremental `tsc -b` that skips an up-to-date build.
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.prestart).toBe('npm run build --silent');
    expect(pkg.scripts.build).toBe('tsc -b tsconfig.json && node ui/build.mjs');
    const dry = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-b', 'tsconfig.json', '--dry', '--verbose'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(dry.stdout).toContain("Project 'tsconfig.json' is up to date");
    // The console's build (ui/build.mjs) skips an up-to-date dist/ui: its files are not written again.
    const index = path.join(ROOT, 'dist/ui/index.html');
    const before = fs.statSync(index).mtimeMs;
    const ui = spawnSync(process.execPath, [path.join(ROOT, 'ui/build.mjs')], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    expect(ui.status, ui.stderr).toBe(0);
    expect(fs.statSync(index).mtimeMs).toBe(before);
  });
});
