import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../core/errors.js';
import { iso } from '../../core/time.js';
import { authenticate } from '../auth.js';
import type { Catalog } from '../../ports/catalog.js';
import type { Log } from '../../ports/log.js';
import type { ViewState } from '../../ports/views.js';
import type { Cell } from '../../ports/store.js';
import { fillBuckets } from '../series.js';
import type { StoreReader } from '../../ports/reader.js';
import { columnsOf, declareView, parseQuery, viewJson, type QuerySpec } from '../../core/query.js';
import { silentZeroWarnings } from '../../query/warnings.js';

export interface QueryRouteOptions {
  catalog: Catalog;
  log: Log;
  reader: StoreReader;
  maxBuckets: number;
  maxRows: number;
  /** Views a tenant may declare through the API (query.viewsPerTenant). */
  viewsPerTenant: number;
}

/** The per-minute counts table answers plain counts (no filter, no group, no order): the cheapest path. */
function isPlainCount(q: QuerySpec): boolean {
  return (
    q.source === 'auto' && q.interval !== null && q.measures.length === 1 && q.measures[0]!.kind === 'count' && q.filters.length === 0 && q.groupBy.length === 0 && q.orderBy.length === 0 && q.limit === null
  );
}

function csvCell(v: Cell): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(columns: string[], rows: Cell[][]): string {
  return [columns, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

function wantsCsv(request: FastifyRequest): boolean {
  return /\btext\/csv\b/i.test(request.headers.accept ?? '');
}

export function wireView(v: ViewState) {
  return {
    name: v.name,
    version: v.version,
    status: v.status,
    source: v.source,
    definition: viewJson(v.def),
    build: v.build,
    created_at: iso(v.createdAt),
    updated_at: iso(v.updatedAt),
    error: v.error,
  };
}

/**
 * POST /v1/query (read key) and the views (`/v1/views`, admin key to change them).
 *
 * A query's `watermark` is the receive time of the oldest event that is not yet visible
 * (still in flight, or in the log past the store's applied offsets), or the time of the
 * answer when everything is visible: every event received before it is counted.
 */
export function queryRoutes(app: FastifyInstance, opts: QueryRouteOptions): void {
  app.post('/v1/query', async (request, reply) => {
    const started = performance.now();
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const q = parseQuery(await request.jsonBody(), grant.tenant, Date.now(), { maxBuckets: opts.maxBuckets, maxRows: opts.maxRows });
    const columns = columnsOf(q);
    let rows: Cell[][];
    let source: string;
    let typed = false;
    let applied: Map<number, number>;
    if (isPlainCount(q)) {
      const r = await opts.reader.counts({ tenant: q.tenant, type: q.event, from: q.from, to: q.to, interval: q.interval! });
      rows = r.rows.map((c) => [c.bucket, c.count]);
      source = 'view:counts_1m';
      applied = r.applied;
    } else {
      const r = await opts.reader.query(q, opts.maxRows + 1);
      if (r.rows.length > opts.maxRows) {
        throw new SluiceError('SLUICE_ERR_QUERY_TOO_LARGE', `the answer has more than ${opts.maxRows} rows: set "limit", group by fewer fields, or use a larger interval`, {
          field: q.groupBy.length ? 'group_by' : 'interval',
        });
      }
      rows = r.rows;
      source = r.source;
      typed = r.typed === true;
      applied = new Map(r.applied);
    }
    const warnings = await silentZeroWarnings(q, columns, rows, { query: async (w) => (await opts.reader.query(w, 10_000)).rows, recent: (t, type, n) => opts.reader.recent(t, type, n) }, Date.now());
    // An ungrouped, unordered timeseries has every bucket, empty ones too (count 0, other measures null).
    if (q.interval && q.groupBy.length === 0 && q.orderBy.length === 0 && q.limit === null) {
      rows = fillBuckets({ from: q.from, to: q.to, interval: q.interval }, rows, q.measures.map((m) => (m.kind === 'count' ? 0 : null)));
    } else if (q.interval) rows = rows.map((row) => [iso(row[0] as number), ...row.slice(1)]);
    const now = Date.now();
    const oldest = await opts.log.oldestUnapplied(applied);
    const watermark = iso(oldest === null ? now : Math.min(oldest, now));
    const elapsed = Math.round((performance.now() - started) * 100) / 100;
    if (wantsCsv(request)) {
      const csv = reply.type('text/csv; charset=utf-8').header('x-sluice-watermark', watermark).header('x-sluice-source', source);
      return (typed ? csv.header('x-sluice-typed-columns', 'true') : csv).send(toCsv(columns, rows));
    }
    // `typed_columns`: raw events read from typed columns, not their JSON (same answer; README, "Typed columns").
    return reply.send({ columns, rows, watermark, source, ...(typed ? { typed_columns: true } : {}), elapsed_ms: elapsed, warnings });
  });

  const viewName = (request: FastifyRequest) => (request.params as { name: string }).name;

  // Which properties have typed columns, per event type: declared by its schema, or promoted
  // by raw queries (`promoted`); `building` until their backfill `typed:<type>` is done.
  app.get('/v1/typed-columns', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const sets = await opts.reader.listTypedColumns(grant.tenant);
    return reply.send({
      typed_columns: sets.map((s) => ({ type: s.type, properties: s.properties, promoted: s.promoted ?? [], status: s.status, build: s.build })),
    });
  });

  app.get('/v1/views', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    return reply.send({ views: (await opts.reader.listViews(grant.tenant)).map(wireView) });
  });

  app.get('/v1/views/:name', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const v = (await opts.reader.listViews(grant.tenant)).find((x) => x.name === viewName(request));
    if (!v) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no view "${viewName(request)}"; GET /v1/views lists them`, { field: 'name' });
    return reply.send(wireView(v));
  });

  app.put('/v1/views/:name', async (request, reply: FastifyReply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    const def = declareView(viewName(request), await request.jsonBody());
    const before = (await opts.reader.listViews(grant.tenant)).find((x) => x.name === def.name);
    // The limit is counted by the store in the write that adds the view (concurrent PUTs, from
    // several processes too, cannot pass it: 100 at once once made 100 views against 20).
    const v = await opts.reader.putView(grant.tenant, def, 'api', opts.viewsPerTenant);
    if (!before || before.version !== v.version) {
      await opts.catalog.audit({ tenant: grant.tenant, actor: grant.keyId, action: 'view.put', subject: def.name, detail: viewJson(def) });
    }
    return reply.code(before ? 200 : 201).send(wireView(v));
  });

  app.delete('/v1/views/:name', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    if (!(await opts.reader.removeView(grant.tenant, viewName(request)))) {
      throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no view "${viewName(request)}"`, { field: 'name' });
    }
    await opts.catalog.audit({ tenant: grant.tenant, actor: grant.keyId, action: 'view.delete', subject: viewName(request), detail: null });
    return reply.code(204).send();
  });
}
