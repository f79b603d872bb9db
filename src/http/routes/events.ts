import type { FastifyInstance } from 'fastify';
import { SluiceError } from '../../core/errors.js';
import { iso } from '../../core/time.js';
import { optInt, optString, optTime, type Fields } from '../fields.js';
import { authenticate, presentedKey } from '../auth.js';
import { wireDeadLetter, wireStored } from '../wire.js';
import type { Catalog } from '../../ports/catalog.js';
import type { Log } from '../../ports/log.js';
import type { StoredEvent } from '../../ports/store.js';
import type { StoreReader } from '../../ports/reader.js';
import type { LiveTail } from '../tail.js';

export interface EventRouteOptions {
  catalog: Catalog;
  log: Log;
  reader: StoreReader;
  tail: LiveTail;
  dedupeHorizonMs: number;
}




/** A page cursor: the position of the last event of the page, opaque to clients. */
function encodeCursor(e: StoredEvent): string {
  return Buffer.from(JSON.stringify([e.ts, e.partition, e.offset])).toString('base64url');
}

function decodeCursor(s: string): { ts: number; partition: number; offset: number } {
  try {
    const v = JSON.parse(Buffer.from(s, 'base64url').toString()) as unknown;
    if (Array.isArray(v) && v.length === 3 && v.every((x) => Number.isSafeInteger(x))) return { ts: v[0], partition: v[1], offset: v[2] };
  } catch {
    // Reported below.
  }
  throw new SluiceError('SLUICE_ERR_INVALID_QUERY', '"cursor" is not one this API returned; pass next_cursor from the previous page', { field: 'cursor' });
}

const SEARCH_FIELDS = ['type', 'key', 'from', 'to', 'limit', 'cursor'];

/**
 * Raw events: `GET /v1/events` (search, newest first, paginated), `GET /v1/events/:key`
 * (lineage: where one event is), `GET /v1/stream` (live tail, Server-Sent Events).
 */
export function eventRoutes(app: FastifyInstance, opts: EventRouteOptions): void {
  app.get('/v1/events', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const f = request.query as Fields;
    for (const k of Object.keys(f)) if (!SEARCH_FIELDS.includes(k)) throw new SluiceError('SLUICE_ERR_INVALID_QUERY', `unknown parameter "${k}"; known: ${SEARCH_FIELDS.join(', ')}`, { field: k });
    const now = Date.now();
    const limit = optInt(f, 'limit', 1, 1000) ?? 100;
    const cursor = optString(f, 'cursor', 200);
    const type = optString(f, 'type', 200);
    const key = optString(f, 'key', 512);
    const events = await opts.reader.searchEvents({
      tenant: grant.tenant,
      ...(type === undefined ? {} : { type }),
      ...(key === undefined ? {} : { key }),
      from: optTime(f, 'from', now) ?? now - 7 * 86_400_000,
      // Event times may be a little ahead of the clock (see events.futureToleranceMs).
      to: optTime(f, 'to', now) ?? now + 3_600_000,
      limit: limit + 1,
      ...(cursor === undefined ? {} : { before: decodeCursor(cursor) }),
    });
    const page = events.slice(0, limit);
    return reply.send({ events: page.map(wireStored), next_cursor: events.length > limit ? encodeCursor(page[page.length - 1]!) : null });
  });

  app.get('/v1/events/:idempotency_key', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const key = (request.params as { idempotency_key: string }).idempotency_key;
    if (key.length === 0 || key.length > 512) throw new SluiceError('SLUICE_ERR_INVALID_QUERY', 'the idempotency key must be 1 to 512 characters', { field: 'idempotency_key' });
    const [seen, stored, dead] = await Promise.all([
      opts.log.seen(grant.tenant, key),
      opts.reader.findEvent(grant.tenant, key),
      opts.catalog.deadLetters.get(grant.tenant, key),
    ]);
    const horizonDays = Math.round((opts.dedupeHorizonMs / 86_400_000) * 10) / 10;
    let status: 'stored' | 'dead_lettered' | 'in_log' | 'unknown';
    let explanation: string;
    if (stored) {
      status = 'stored';
      explanation = `stored at ${iso(stored.storedAt)} from partition ${stored.partition}, offset ${stored.offset}; it is counted once, and the same key sent again is answered as a duplicate`;
    } else if (dead && (dead.status === 'open' || dead.status === 'held' || dead.status === 'discarded')) {
      status = 'dead_lettered';
      const next =
        dead.status === 'discarded'
          ? 'it was discarded'
          : dead.status === 'held'
            ? 'it is held while the tenant is paused, and stored, exactly once, when the tenant resumes: fix the cause of the pause, then POST /v1/tenant/resume (sluice tenant resume)'
            : 'fix its cause and replay it: POST /v1/dlq/replay (sluice dlq replay)';
      explanation = `dead-lettered (${dead.reason}: ${dead.message}); ${next}`;
    } else if (seen || dead) {
      status = 'in_log';
      explanation = 'accepted and durable in the log, not yet in the store: a worker will commit it (see the watermark of a query, or GET /v1/status for the lag)';
    } else {
      status = 'unknown';
      explanation = `no event with this key was accepted in the last ${horizonDays} days: it was rejected at the door (the answer to its request listed it with the field at fault), never sent, or sent with another key`;
    }
    return reply.send({
      idempotency_key: key,
      status,
      explanation,
      accepted: seen || stored !== null || dead !== null,
      stored: stored ? wireStored(stored) : null,
      dead_letter: dead ? wireDeadLetter(dead) : null,
    });
  });

  app.get('/v1/stream', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const f = request.query as Fields;
    const type = optString(f, 'type', 200) ?? null;
    opts.tail.admit(grant);
    const res = reply.raw;
    reply.hijack();
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(`: live tail of ${type ?? 'every event type'}; events appear once durable in the log\n\n`);
    const unsubscribe = opts.tail.subscribe(grant, presentedKey(request.headers.authorization) ?? '', type, res);
    // A comment now and then keeps proxies from closing an idle stream.
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    ping.unref();
    const end = (): void => {
      clearInterval(ping);
      unsubscribe();
    };
    request.raw.socket.setTimeout(0);
    res.on('close', end);
    res.on('error', end);
  });
}
