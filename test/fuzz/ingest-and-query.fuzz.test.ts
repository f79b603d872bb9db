import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DuckDBInstance } from '@duckdb/node-api';
import { Params, rawQuerySql, viewMaintainSql, viewQuerySql, viewTableDdl } from '../../src/backends/duckdb/query-sql.js';
import { SCHEMA } from '../../src/backends/duckdb/sql.js';
import { SluiceError } from '../../src/core/errors.js';
import { validateEvent } from '../../src/core/event.js';
import { eventsOf, decodeJsonBody } from '../../src/http/body.js';
import { fromCloudEvent } from '../../src/ingest/cloudevents.js';
import { segmentEvents } from '../../src/ingest/segment.js';
import { chooseView, residualFilters } from '../../src/core/plan.js';
import { parseQuery, parseView } from '../../src/core/query.js';

/**
 * Fuzz targets, run briefly in every test run (FUZZ_RUNS raises it): the ingest body parser
 * and the query compiler take any input and either answer or refuse with a SluiceError that
 * names a field; nothing else escapes, and no input reaches SQL text.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
/**
 * The test suite replays the same inputs every run (a failure is a regression, not luck);
 * `npm run fuzz` (FUZZ_RUNS set) explores new ones, and prints the seed of any failure.
 */
const SEED = process.env.FUZZ_RUNS ? undefined : 20261124;
const opts = (numRuns: number) => (SEED === undefined ? { numRuns } : { numRuns, seed: SEED });
const limits = { maxEventBytes: 32_768, maxDepth: 32 };

/** Only refusals sluice means to give: a SluiceError with a code, a status and a message. */
function refusalOrValue(fn: () => unknown): void {
  try {
    fn();
  } catch (e: unknown) {
    if (!(e instanceof SluiceError)) throw e;
    expect(e.status).toBeGreaterThanOrEqual(400);
    expect(e.status).toBeLessThan(500);
    expect(e.message.length).toBeGreaterThan(0);
  }
}

const hostileKey = fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor', 'prototype', 'type', 'key', 'ts', 'properties', 'context', 'batch', 'sent_at', ''));
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string(),
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(hostileKey, tie('value'), { maxKeys: 5 }),
  ),
})).value;

const eventLike = fc.record(
  {
    type: fc.oneof(fc.string(), fc.constantFrom('checkout', '', 'x'.repeat(300)), json),
    key: fc.oneof(fc.string(), json),
    ts: fc.oneof(fc.constantFrom('2026-11-24T10:00:00Z', 'now', '', '2026-13-45T99:99:99Z', '1e400'), fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), json),
    idempotency_key: fc.oneof(fc.string(), json),
    properties: json,
    context: json,
  },
  { requiredKeys: [] },
);

describe('fuzz: ingest', () => {
  it('fuzz.body-bytes-decode-to-json-or-a-field-named-refusal', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), fc.boolean(), async (bytes, gz) => {
        const raw = Buffer.from(gz ? gzipSync(bytes) : bytes);
        try {
          const v = await decodeJsonBody(raw, gz ? 'gzip' : undefined, 4096);
          refusalOrValue(() => eventsOf(v, 1000));
        } catch (e: unknown) {
          if (!(e instanceof SluiceError)) throw e;
          expect(e.field).toBeTruthy();
        }
      }),
      opts(RUNS),
    );
  });

  it('fuzz.any-json-event-is-accepted-or-rejected-with-a-json-pointer', () => {
    fc.assert(
      fc.property(fc.oneof(eventLike, json), (e) => {
        const v = validateEvent(e, 'acme', Date.now(), 16, limits);
        if (v.ok) {
          expect(v.entry.tenant).toBe('acme');
          expect(JSON.parse(v.entry.properties)).toBeTypeOf('object');
          expect(v.entry.partition).toBeGreaterThanOrEqual(0);
          expect(v.entry.partition).toBeLessThan(16);
        } else {
          expect(v.rejection.path === '' || v.rejection.path.startsWith('/')).toBe(true);
          expect(v.rejection.message.length).toBeGreaterThan(0);
        }
      }),
      opts(RUNS * 3),
    );
  });

  it('fuzz.segment-and-cloudevents-shapes-map-or-refuse', () => {
    fc.assert(
      fc.property(json, fc.constantFrom('track', 'identify', 'page', 'screen', 'group', 'alias', 'batch') as fc.Arbitrary<'track'>, (body, kind) => {
        refusalOrValue(() => {
          for (const e of segmentEvents(kind, body, 1000).events) validateEvent(e, 'acme', Date.now(), 16, limits);
        });
        refusalOrValue(() => validateEvent(fromCloudEvent(body, 'body'), 'acme', Date.now(), 16, limits));
      }),
      opts(RUNS),
    );
  });
});

const MARK = 'ZZ_INJECT_ZZ';
/** Mostly well-formed, sometimes hostile: the compiler must be reached, not only the parser's refusals. */
const mostly = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>) => fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: bad, weight: 1 });
const goodField = fc.constantFrom('type', 'key', 'properties.region', 'context.app', 'properties.a.b', `properties.${MARK}`, 'properties.amount');
const fieldLike = mostly(goodField, fc.oneof(fc.string().map((s) => `properties.${s}`), fc.string(), fc.constant(`properties.x'; DROP TABLE events; --${MARK}`)));
const valueLike = fc.oneof(fc.string().map((s) => s + MARK), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), fc.boolean());
const filterLike = fc.record({
  field: fieldLike,
  op: mostly(fc.constantFrom('eq', 'neq', 'in', 'nin', 'gt', 'gte', 'lt', 'lte', 'contains', 'exists'), fc.string()),
  value: mostly(fc.oneof(valueLike, fc.array(valueLike, { minLength: 1, maxLength: 4 })), json),
});
const measureLike = mostly(fc.oneof(fc.constantFrom('count', 'sum:amount', 'uniq:key', 'p95:latency_ms', 'p99.9:x', 'avg:properties.a.b'), goodField.filter((f) => f.startsWith('properties')).map((f) => `max:${f}`)), fc.string());
const queryLike = fc.record(
  {
    event: mostly(fc.string({ minLength: 1, maxLength: 50 }).map((s) => s + MARK), json),
    from: mostly(fc.constantFrom('-24h', '-15m', '-2h', '2026-11-24T00:00:00Z', '-999999999d'), fc.string()),
    to: mostly(fc.constantFrom('now', '2026-11-24T11:00:00Z'), fc.string()),
    interval: mostly(fc.constantFrom('1m', '5m', '15m', '1h', '6h', '1d', null), fc.string()),
    measures: mostly(fc.uniqueArray(measureLike, { minLength: 1, maxLength: 4 }), json),
    filters: mostly(fc.array(filterLike, { maxLength: 4 }), json),
    group_by: mostly(fc.uniqueArray(goodField, { maxLength: 3 }), fc.array(fieldLike, { maxLength: 4 })),
    order_by: mostly(fc.constantFrom('-count', 'count desc', 'bucket'), fc.oneof(fieldLike, json)),
    limit: mostly(fc.integer({ min: 1, max: 10_000 }), json),
    source: mostly(fc.constantFrom('auto', 'raw'), fc.string()),
  },
  { requiredKeys: [] },
);

describe('fuzz: the query compiler', () => {
  const view = parseView('orders', { event: 'checkout', dimensions: ['properties.region', 'context.app', 'key'], measures: ['count', 'sum:amount', 'uniq:key', 'p95:latency_ms'], grain: '1m' });

  it('fuzz.queries-compile-to-sql-without-request-text-or-are-refused-with-400', () => {
    let compiled = 0;
    fc.assert(
      fc.property(fc.oneof(queryLike, json), (body) => {
        refusalOrValue(() => {
          const q = parseQuery(body, `tenant${MARK}`, Date.parse('2026-11-24T12:00:00Z'), { maxBuckets: 100_000, maxRows: 10_000 });
          const raw = rawQuerySql(q, 10_001);
          compiled++;
          expect(raw.sql).not.toContain(MARK);
          expect(raw.sql).not.toContain('DROP');
          const v = chooseView([{ def: view }], q);
          if (v) {
            const s = viewQuerySql(q, 'view_x', view, residualFilters(view, q), 10_001);
            expect(s.sql).not.toContain(MARK);
          }
        });
      }),
      opts(RUNS * 3),
    );
    // The generators must reach the compiler, not only the parser's refusals.
    expect(compiled).toBeGreaterThan(RUNS / 10);
  });

  it('fuzz.every-compiled-query-runs-on-duckdb', async () => {
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    await c.run(SCHEMA);
    await c.run(viewTableDdl('view_x', view));
    await c.run(`INSERT INTO events VALUES ('t', 'checkout', 'k', 'i', '2026-11-24 10:00:00', '2026-11-24 10:00:00', 0, 1, 'live', '{"region":"eu","amount":3,"a":{"b":1}}', '{"app":"web"}', '2026-11-24 10:00:00', 0, 0)`);
    const maintain = new Params();
    await c.run(viewMaintainSql('view_x', view, 'events', maintain), maintain.values);
    let ran = 0;
    try {
      await fc.assert(
        fc.asyncProperty(queryLike, async (body) => {
          let q;
          try {
            q = parseQuery(body, 't', Date.parse('2026-11-24T12:00:00Z'), { maxBuckets: 100_000, maxRows: 10_000 });
          } catch (e: unknown) {
            if (e instanceof SluiceError) return;
            throw e;
          }
          const raw = rawQuerySql(q, 10_001);
          await c.runAndReadAll(raw.sql, raw.params);
          if (chooseView([{ def: view }], q)) {
            const v = viewQuerySql(q, 'view_x', view, residualFilters(view, q), 10_001);
            await c.runAndReadAll(v.sql, v.params);
          }
          ran++;
        }),
        opts(RUNS),
      );
    } finally {
      c.closeSync();
      db.closeSync();
    }
    expect(ran).toBeGreaterThan(RUNS / 20);
  });

  it('fuzz.view-definitions-parse-or-are-refused-with-400', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.constantFrom('orders', 'Orders', '1x', 'a'.repeat(64))), fc.oneof(queryLike, json), (name, body) => {
        refusalOrValue(() => parseView(name, body));
      }),
      opts(RUNS),
    );
  });

  it('fuzz.params-number-every-value', () => {
    const p = new Params();
    expect([p.add('a'), p.add(1), p.add(null)]).toEqual(['$1', '$2', '$3']);
  });
});
