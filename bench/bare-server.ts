import Fastify from 'fastify';

/**
 * The ingest baseline: a bare Fastify server that parses each JSON batch and discards it.
 * Whatever sluice's ingest does beyond this (validation, hashing, the durable log append) is
 * what the ratio measures.
 */
const port = Number(process.argv[2]);
const app = Fastify({ logger: false, bodyLimit: 1_048_576 });
app.get('/healthz', async () => ({ status: 'ok' }));
app.post('/v1/events', async (request, reply) => {
  const body = request.body as unknown[];
  return reply.code(202).send({ accepted: Array.isArray(body) ? body.length : 1, duplicates: 0, rejected: [] });
});
await app.listen({ host: '127.0.0.1', port });
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
