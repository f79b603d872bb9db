import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';

/**
 * The observability address (`obs.metricsAddress`, `host:port`): a second listener that
 * answers only `GET /metrics`, `/healthz` and `/readyz`, by asking the main app in-process.
 * So a scraper can reach the metrics (which name tenants and their volumes) on an address
 * of their own — a private network, or loopback — while the API listens on a public one.
 *
 * On the main listener, `/metrics` answers loopback clients only (see `isLoopback`).
 */
const PATHS = new Set(['/metrics', '/healthz', '/readyz']);

/** Splits `host:port` (`[::1]:9464` for IPv6); throws naming obs.metricsAddress. */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`obs.metricsAddress "${address}" is not host:port (e.g. 127.0.0.1:9464, or 0.0.0.0:9464 on a private network)`);
  return { host: (m[1] ?? m[2])!, port };
}

/** Whether a peer address is the machine itself (127.0.0.0/8, ::1, or IPv4-mapped loopback). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || a === 'localhost' || (isIP(a) === 4 && a.startsWith('127.'));
}

/** Starts the observability listener; resolves to it once it listens (its URL by `address()`). */
export async function listenObservability(app: FastifyInstance, address: string): Promise<Server> {
  const { host, port } = parseAddress(address);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method !== 'GET' || !PATHS.has(path)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('this address serves GET /metrics, /healthz and /readyz only\n');
      return;
    }
    app.inject({ method: 'GET', url: req.url ?? path }).then(
      (r) => {
        const type = r.headers['content-type'];
        res.writeHead(r.statusCode, type === undefined ? {} : { 'content-type': String(type) }).end(r.rawPayload);
      },
      () => res.writeHead(503).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
