import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startTimeOf } from '../../src/app/data-dir-lock.js';
import { CLI, freePort, keysFrom, startServer, stop } from '../helpers/server.js';
import { until } from '../helpers/pipeline.js';
import { tmpDir } from '../helpers/tmp.js';

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? [p, ...walk(p)] : [p];
  });
}

describe('sluice up and its data directory', () => {
  it('up.creates-the-data-directory-0700-and-its-files-0600', async () => {
    const dir = path.join(tmpDir(), 'data');
    const s = await startServer(dir, await freePort());
    try {
      const { writeKey } = keysFrom(s.stdout);
      const res = await fetch(`${s.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${writeKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ type: 'a', idempotency_key: 'x', ts: new Date().toISOString() }) });
      expect(res.status).toBe(202);
      expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
      const entries = walk(dir);
      expect(entries.map((p) => path.basename(p))).toEqual(expect.arrayContaining(['sluice.db', 'sluice.pid']));
      for (const p of entries) {
        const mode = fs.statSync(p).mode & 0o777;
        expect(mode & 0o077, `${path.relative(dir, p)} is ${mode.toString(8)}`).toBe(0);
      }
    } finally {
      await stop(s);
    }
  });

  it('up.a-pid-file-whose-pid-now-belongs-to-another-process-does-not-block-start', async () => {
    const dir = tmpDir();
    const other = spawn('sleep', ['60'], { stdio: 'ignore' }); // not sluice, alive
    try {
      const pid = other.pid!;
      // Recorded by a sluice that ran before a reboot: same pid, another start time.
      fs.writeFileSync(path.join(dir, 'sluice.pid'), `${pid} 1\n`);
      const s = await startServer(dir, await freePort());
      expect(fs.readFileSync(path.join(dir, 'sluice.pid'), 'utf8').trim().split(' ')[0]).toBe(String(s.child.pid));
      expect(await stop(s)).toBe(0);
      expect(fs.existsSync(path.join(dir, 'sluice.pid'))).toBe(false);

      // The same pid and its own start time: that process holds the lock, and the message says
      // what to do.
      fs.writeFileSync(path.join(dir, 'sluice.pid'), `${pid} ${startTimeOf(pid)}\n`);
      const refused = spawnSync(process.execPath, [CLI, 'up', '--data-dir', dir, '--port', String(await freePort())], { encoding: 'utf8', timeout: 20_000 });
      expect(refused.status).toBe(2);
      expect(refused.stderr).toContain(`another sluice (pid ${pid}) is running on`);
      expect(refused.stderr).toContain('is stale: remove it');

      // A lock written by an earlier version (the pid alone) whose pid is now another program:
      // not sluice's command line, so not the holder.
      fs.writeFileSync(path.join(dir, 'sluice.pid'), `${pid}\n`);
      const again = await startServer(dir, await freePort());
      expect(await stop(again)).toBe(0);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('up.a-pid-file-of-a-killed-process-not-yet-reaped-does-not-block-start', async () => {
    const dir = tmpDir();
    // A process whose parent never reaps it (the shell becomes `sleep`, which never waits):
    // killed, it stays a zombie, answering kill(pid, 0), with state Z in /proc.
    const parent = spawn('sh', ['-c', 'sleep 60 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString()))));
      // Killed only once the shell has become `sleep` (a shell still running would reap it).
      await until(async () => fs.readFileSync(`/proc/${parent.pid}/comm`, 'utf8').trim() === 'sleep', 10_000);
      fs.writeFileSync(path.join(dir, 'sluice.pid'), `${pid} ${startTimeOf(pid)}\n`);
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 100 && !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '); i++) await new Promise((r) => setTimeout(r, 20));
      expect(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')).toContain(') Z ');
      const s = await startServer(dir, await freePort());
      expect(await stop(s)).toBe(0);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
