import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONSOLE_HEADERS } from '../headers.js';

/** Where `npm run build` puts the console (Vite's output, see ui/vite.config.ts). */
export const CONSOLE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../ui');

const MISSING = `<!doctype html><meta charset="utf-8"><title>sluice console</title>
<p>The console is not built. Run <code>npm run build</code> (it builds the API and the console), then restart sluice.</p>`;

/**
 * The console at `/ui/` (`/` redirects there): Vite's build, served as static files. A path
 * under /ui/ that is not a file is a page of the console (`/ui/explore`, `/ui/events/k-1`):
 * it gets index.html and the console routes it. Hashed assets are cached for a year; the
 * page itself never, so a new build is picked up at once. Every answer carries the security
 * headers (http/headers.ts).
 */
export async function consoleRoutes(app: FastifyInstance, opts: { dir?: string } = {}): Promise<void> {
  const dir = opts.dir ?? CONSOLE_DIR;
  app.addHook('onSend', async (_request, reply) => {
    for (const [k, v] of Object.entries(CONSOLE_HEADERS)) reply.header(k, v);
  });
  app.get('/', async (_request, reply) => reply.redirect('/ui/', 302));
  app.get('/ui', async (_request, reply) => reply.redirect('/ui/', 301));
  const built = fs.existsSync(path.join(dir, 'index.html'));
  if (!built) {
    app.get('/ui/*', async (_request, reply) => reply.code(503).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(MISSING));
    return;
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: '/ui/',
    index: false,
    wildcard: false,
    decorateReply: true,
    setHeaders(reply, file) {
      reply.header('cache-control', file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  const page = async (request: FastifyRequest, reply: FastifyReply) => {
    // A missing asset is a 404, not the page (a stale tab after an upgrade must not parse HTML as script).
    if (request.url.startsWith('/ui/assets/')) return reply.code(404).type('text/plain; charset=utf-8').send('no such file; reload the console');
    return reply.header('cache-control', 'no-cache').sendFile('index.html');
  };
  app.get('/ui/', page);
  // Files were registered one by one (wildcard: false): anything else under /ui/ is a page.
  app.get('/ui/*', page);
}
