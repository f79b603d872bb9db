import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from dist-bench/bench/ or bench/. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), fileURLToPath(import.meta.url).includes('dist-bench') ? '../..' : '..');
export const CLI = path.join(ROOT, 'dist/cli/sluice.cjs');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface Child {
  child: ChildProcess;
  url: string;
  stdout: string;
  stderr: string;
  /** Resident set size of the child process in bytes (Linux), or NaN. */
  rss(): number;
  stop(): Promise<void>;
}

/** Spawns a node script that serves HTTP on `port`, and resolves when it answers `/healthz`. */
export async function spawnServer(script: string, args: string[], port: number, env: NodeJS.ProcessEnv = {}): Promise<Child> {
  const child = spawn(process.execPath, [script, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const c: Child = {
    child,
    url: `http://127.0.0.1:${port}`,
    stdout: '',
    stderr: '',
    rss: () => rssOf(child.pid),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
  child.stdout!.on('data', (d: Buffer) => (c.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (c.stderr += d.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${path.basename(script)} exited with ${child.exitCode}: ${c.stderr}`);
    try {
      if ((await fetch(`${c.url}/healthz`)).ok) return c;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${path.basename(script)} did not answer within 60 s: ${c.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts `sluice up`, and resolves once it answers and has printed its banner (the keys of a new tenant; its last line is `Stop: …`). */
export async function startSluice(dataDir: string, port: number, env: NodeJS.ProcessEnv = {}): Promise<Child> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build"`);
  const c = await spawnServer(CLI, ['up', '--data-dir', dataDir, '--port', String(port)], port, { SLUICE_LOG_LEVEL: 'warn', ...env });
  for (const deadline = Date.now() + 60_000; !c.stdout.includes('Stop: '); await new Promise((r) => setTimeout(r, 50))) {
    if (c.child.exitCode !== null) throw new Error(`sluice up exited with ${c.child.exitCode}: ${c.stderr}`);
    if (Date.now() > deadline) {
      c.child.kill('SIGKILL');
      throw new Error(`sluice up printed no banner within 60 s: ${c.stderr}`);
    }
  }
  return c;
}

function rssOf(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

export function keysFrom(stdout: string): { writeKey: string; readKey: string; adminKey: string } {
  const w = /write key:\s+(\S+)/.exec(stdout);
  const r = /read key:\s+(\S+)/.exec(stdout);
  const a = /admin key:\s+(\S+)/.exec(stdout);
  if (!w || !r || !a) throw new Error(`no keys in the output of sluice up:\n${stdout}`);
  return { writeKey: w[1]!, readKey: r[1]!, adminKey: a[1]! };
}
