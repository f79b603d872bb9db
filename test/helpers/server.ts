import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// One implementation for the tests and the benchmarks.
export { freePort, keysFrom } from '../../bench/proc.js';

export const CLI = path.resolve(fileURLToPath(new URL('../../dist/cli/sluice.cjs', import.meta.url)));

export function assertBuilt(): void {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does it)`);
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
}

/** Starts `sluice up` (or one role: `command`) as a child process and resolves once it answers /healthz. */
export async function startServer(
  dataDir: string,
  port: number,
  extraArgs: string[] = [],
  env: NodeJS.ProcessEnv = {},
  command: 'up' | 'ingest' | 'worker' | 'query' = 'up',
): Promise<ServerProcess> {
  assertBuilt();
  const child = spawn(process.execPath, [CLI, command, '--data-dir', dataDir, '--port', String(port), ...extraArgs], {
    env: { ...process.env, SLUICE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc: ServerProcess = {
    child,
    url: `http://127.0.0.1:${port}`,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
  };
  child.stdout!.on('data', (d: Buffer) => (proc.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (proc.stderr += d.toString()));
  // 60 s: a role process restarted beside the kill-9 suites on two cores once took over 30 s to answer.
  const deadline = Date.now() + 60_000;
  for (;;) {
    // Its banner is out: it was up, even if it has died since (a poison event processed
    // right after the banner kills it within milliseconds); the caller sees it exited.
    const bannered = proc.stdout.includes('Health: ');
    if (child.exitCode !== null || child.signalCode !== null) {
      if (bannered) return proc;
      throw new Error(`sluice ${command} exited with ${child.exitCode ?? child.signalCode} before it was up: ${proc.stderr}`);
    }
    try {
      const r = await fetch(`${proc.url}/healthz`);
      // The banner (with a new tenant's keys) is written just after the server listens: wait
      // for its last line too, so callers can read the keys from stdout.
      if (r.ok && proc.stdout.includes('Health: ')) return proc;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`sluice ${command} did not answer within 60 s: ${proc.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function kill9(s: ServerProcess): Promise<void> {
  s.child.kill('SIGKILL');
  await s.exited;
}

export async function stop(s: ServerProcess): Promise<number | null> {
  s.child.kill('SIGTERM');
  return s.exited;
}
