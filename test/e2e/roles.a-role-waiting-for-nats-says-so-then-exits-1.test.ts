import { spawn } from 'node:child_process';
import { expect, it } from 'vitest';
import { CLI, freePort } from '../helpers/server.js';
import { POSTGRES_URL } from '../helpers/services.js';

/**
 * A role process started while NATS cannot be reached waits for it, says so in its log, and
 * after `log.startTimeoutMs` exits with 1 naming what it waited for. It exited with 0 and no
 * word about a second after start: its only pending work was the wait between attempts, on a
 * timer that did not keep the process alive, so a supervisor that restarts failed processes
 * only never restarted it. (Nothing listens on the port named: no NATS server is needed.)
 */
it('roles.an-ingest-process-waiting-for-nats-says-so-and-exits-1-at-its-deadline', async () => {
  const natsPort = await freePort();
  const child = spawn(process.execPath, [CLI, 'ingest', '--log', `nats://127.0.0.1:${natsPort}`, '--store', POSTGRES_URL, '--catalog', POSTGRES_URL, '--port', String(await freePort())], {
    env: { ...process.env, SLUICE_LOG_START_TIMEOUT_MS: '3000', SLUICE_LOG_LEVEL: 'warn', SLUICE_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const started = Date.now();
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  const took = Date.now() - started;
  expect(code, stderr).toBe(1);
  // It waited (not a second, as when it gave up silently), then gave up.
  expect(took).toBeGreaterThanOrEqual(3_000);
  const waiting = stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; attempt: number })
    .filter((l) => l.msg.startsWith('waiting for NATS'));
  expect(waiting[0]).toMatchObject({ attempt: 1, msg: expect.stringContaining(`waiting for NATS at nats://127.0.0.1:${natsPort} (`) });
  expect(waiting[0]!.msg).toContain('for up to 3 s, log.startTimeoutMs, then this process exits with 1)');
  expect(stderr).toContain(`sluice: cannot reach NATS at 127.0.0.1:${natsPort}: `);
  expect(stderr).toContain('Start it (see the README: "Scaling out: NATS JetStream and PostgreSQL") or fix --log.');
}, 30_000);
