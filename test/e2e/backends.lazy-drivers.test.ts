import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { watchLoadedPackages } from '../helpers/loaded-packages.js';
import { assertBuilt, CLI, freePort, startServer, stop } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/** The PostgreSQL client and its parts (pg-pool, pg-protocol…), and the NATS client. */
const SHARED_DRIVERS = /^(pg|pg-.*|nats|nats-.*|@nats-io\/.*)$/;

describe('backends load their drivers on first use', () => {
  it('up.on-the-embedded-default-loads-neither-nats-nor-pg', async () => {
    const dir = tmpDir();
    const loaded = watchLoadedPackages(tmpDir());
    const server = await startServer(dir, await freePort(), [], { NODE_OPTIONS: loaded.nodeOptions });
    // An event goes all the way to the store, so the consumers and the store thread have run.
    const writeKey = /write key: (\S+)/.exec(server.stdout)![1]!;
    const r = await fetch(`${server.url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${writeKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'checkout', key: 'user-1', properties: { amount: 1 } }),
    });
    expect(r.status).toBeLessThan(300);
    expect(await stop(server)).toBe(0);
    const packages = loaded.read();
    // The hook saw both threads: the HTTP thread's server and the store thread's DuckDB.
    expect(packages).toContain('fastify');
    expect(packages).toContain('better-sqlite3');
    expect([...packages].some((p) => p.startsWith('@duckdb/'))).toBe(true);
    expect([...packages].filter((p) => SHARED_DRIVERS.test(p))).toEqual([]);
  });

  it('doctor.loads-only-the-driver-of-the-backend-it-probes', () => {
    assertBuilt();
    const run = (...args: string[]): Set<string> => {
      const loaded = watchLoadedPackages(tmpDir());
      spawnSync(process.execPath, [CLI, 'doctor', '--data-dir', tmpDir(), ...args], {
        encoding: 'utf8',
        env: { ...process.env, SLUICE_LOG_LEVEL: 'warn', NODE_OPTIONS: loaded.nodeOptions },
        timeout: 30_000,
      });
      return loaded.read();
    };
    const embedded = run();
    expect([...embedded].filter((p) => SHARED_DRIVERS.test(p))).toEqual([]);
    // Nothing listens on port 1: the probe fails fast, after loading the NATS client only.
    const nats = run('--log', 'nats://127.0.0.1:1');
    expect(nats).toContain('nats');
    expect([...nats].filter((p) => /^pg/.test(p))).toEqual([]);
  });
});
