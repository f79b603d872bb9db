import type { FastifyInstance } from 'fastify';
import { SluiceError } from '../../core/errors.js';
import { bucketStart, INTERVAL_MS, INTERVALS, isInterval } from '../../core/time.js';
import type { Interval } from '../../core/types.js';
import { objectBody, optTime } from '../fields.js';
import { authenticate } from '../auth.js';
import { lagOf, positionsOf } from '../../obs/lag.js';
import { SIGNAL_COLUMNS, signalRows, type SignalSampler } from '../../obs/signals.js';
import type { Catalog } from '../../ports/catalog.js';
import type { Log } from '../../ports/log.js';
import type { StoreReader } from '../../ports/reader.js';

/**
 * `GET /v1/signals?from=&to=&interval=` (read or admin key) → `{columns, rows, watermark}`:
 * the key's tenant's pipeline per bucket (see obs/signals.ts for each column). `from`
 * defaults to -1h, `to` to now, `interval` to 1m; times are RFC 3339 or relative ("-24h").
 * The range is aligned to whole buckets, as queries are.
 */
export async function signalRoutes(app: FastifyInstance, opts: { catalog: Catalog; log: Log; reader: StoreReader; sampler: SignalSampler; maxBuckets: number; now?: () => number }): Promise<void> {
  const now = opts.now ?? Date.now;
  app.get('/v1/signals', async (request) => {
    const { tenant } = await authenticate(opts.catalog, request, ['read', 'admin']);
    const f = objectBody(request.query ?? {}, ['from', 'to', 'interval']);
    const t = now();
    const interval = (f.interval ?? '1m') as Interval;
    if (!isInterval(interval)) throw new SluiceError('SLUICE_ERR_INVALID_QUERY', `"interval" must be one of ${INTERVALS.join(', ')}`, { field: 'interval' });
    const size = INTERVAL_MS[interval];
    const from = bucketStart(optTime(f, 'from', t) ?? t - 3_600_000, interval);
    const to = Math.ceil((optTime(f, 'to', t) ?? t) / size) * size;
    if (to <= from) throw new SluiceError('SLUICE_ERR_INVALID_QUERY', '"to" must be after "from"', { field: 'to' });
    if ((to - from) / size > opts.maxBuckets) {
      throw new SluiceError('SLUICE_ERR_QUERY_TOO_LARGE', `the range spans ${(to - from) / size} buckets; the limit is ${opts.maxBuckets}: use a larger interval or a shorter range`, { field: 'interval' });
    }
    // The watermark first: every count read after it holds at least what it promises.
    const watermark = Math.min(lagOf(await positionsOf(opts.log), t).watermark, t);
    const [tallies, stored, deadLettered] = await Promise.all([opts.log.tallies(from, to), opts.reader.storedByMinute(from, to), opts.catalog.deadLetters.byMinute(from, to)]);
    const rows = signalRows({ tenant, from, to, interval, tallies, stored, deadLettered, sampler: opts.sampler, watermark });
    return { columns: SIGNAL_COLUMNS, rows, watermark: new Date(watermark).toISOString() };
  });
}
