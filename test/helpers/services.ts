import pg from 'pg';
import net from 'node:net';
import { randomBytes } from 'node:crypto';

/**
 * The external services of the scale-out tests: NATS with JetStream and PostgreSQL, at the
 * addresses in SLUICE_TEST_NATS and SLUICE_TEST_POSTGRES (defaults: the local ones). On a
 * laptop without them the tests skip with a message saying how to start them; in CI (CI is
 * set) a missing service fails the run.
 */
export const NATS_URL = process.env.SLUICE_TEST_NATS ?? 'nats://127.0.0.1:4222';
export const POSTGRES_URL = process.env.SLUICE_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port || defaultPort) });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

async function available(name: string, url: string, port: number, howTo: string): Promise<boolean> {
  if (await reachable(url, port)) return true;
  const message = `${name} is not reachable at ${url}: ${howTo}`;
  if (process.env.CI) throw new Error(`${message} (CI must run these tests)`);
  console.warn(`skipping the ${name} tests: ${message}`);
  return false;
}

export const natsAvailable = (): Promise<boolean> =>
  available('NATS', NATS_URL, 4222, 'start one with `nats-server -js` (or `docker compose -f deploy/docker-compose.yml up nats`), or set SLUICE_TEST_NATS');

export const postgresAvailable = (): Promise<boolean> =>
  available('PostgreSQL', POSTGRES_URL, 5432, 'start one (or `docker compose -f deploy/docker-compose.yml up postgres`), or set SLUICE_TEST_POSTGRES');

/** A name no other test uses: a stream, a schema. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/** Drops a test's PostgreSQL schema and everything in it (a store's or a catalog's tables). */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}
