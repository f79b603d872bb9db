import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceError } from '../../src/core/errors.js';
import { checkConservation } from '../../src/obs/conservation.js';
import { validateEvent } from '../../src/core/event.js';
import { isWellFormed } from '../../src/core/text.js';
import { parseRfc3339Detailed } from '../../src/core/time.js';
import { decodeJsonBody, eventsOf } from '../../src/http/body.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

/**
 * Fuzz properties of issue 19's kinds: every value a producer sends is stored exactly, or
 * refused with a JSON pointer to a field that really holds the fault, and reads keep working.
 * Seeded as in ingest-and-query.fuzz.test.ts; `npm run fuzz` explores new inputs.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = process.env.FUZZ_RUNS ? undefined : 20261129;
const opts = (numRuns: number) => (SEED === undefined ? { numRuns } : { numRuns, seed: SEED });
const limits = { maxEventBytes: 65_536, maxDepth: 32 };

/** Text that is sometimes not Unicode: a lone surrogate anywhere among ordinary characters. */
const text = fc
  .array(fc.oneof({ arbitrary: fc.string({ unit: 'binary', maxLength: 4 }), weight: 6 }, { arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), weight: 1 }), { maxLength: 5 })
  .map((parts) => parts.join(''));

const value = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small' }, text, fc.integer(), fc.boolean(), fc.constant(null), fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(text, tie('v'), { maxKeys: 4 })),
})).v;

/** The value a JSON pointer names, or undefined; a key's pointer names [object, key]. */
function resolve(root: unknown, pointer: string): { holder: unknown; last: string } | undefined {
  const parts = pointer.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  let cur: unknown = root;
  for (let i = 0; i < parts.length - 1; i++) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[parts[i]!];
  }
  return { holder: cur, last: parts[parts.length - 1] ?? '' };
}

function allWellFormed(v: unknown): boolean {
  if (typeof v === 'string') return isWellFormed(v);
  if (Array.isArray(v)) return v.every(allWellFormed);
  if (v !== null && typeof v === 'object') return Object.entries(v).every(([k, x]) => isWellFormed(k) && allWellFormed(x));
  return true;
}

async function decode(body: string): Promise<{ ok: true; value: unknown } | { ok: false; error: SluiceError }> {
  try {
    return { ok: true, value: await decodeJsonBody(Buffer.from(body, 'utf8'), undefined, 1 << 20) };
  } catch (e: unknown) {
    if (!(e instanceof SluiceError)) throw e;
    return { ok: false, error: e };
  }
}

describe('fuzz: faithful inputs', () => {
  it('fuzz.invalid-unicode-anywhere-is-refused-at-its-pointer-or-stored-exactly', async () => {
    const seen = { text: 0, notText: 0 };
    await fc.assert(
      fc.asyncProperty(fc.record({ type: text, key: text, idempotency_key: text, properties: fc.dictionary(text, value, { maxKeys: 4 }), context: fc.dictionary(text, value, { maxKeys: 3 }) }, { requiredKeys: ['type'] }), async (event) => {
        // JSON.stringify writes a lone surrogate as its \u escape (well-formed JSON.stringify, ES2019).
        const body = JSON.stringify({ batch: [event] });
        const d = await decode(body);
        seen[allWellFormed(event) ? 'text' : 'notText']++;
        if (!allWellFormed(event)) {
          expect(d.ok).toBe(false);
          if (d.ok) return;
          expect(d.error.code).toBe('SLUICE_ERR_INVALID_ENCODING');
          // The pointer names a string, or a key, that holds a lone surrogate.
          const at = resolve(JSON.parse(body), d.error.field!);
          expect(at).toBeDefined();
          const holder = at!.holder as Record<string, unknown>;
          const named = holder !== null && typeof holder === 'object' && Object.hasOwn(holder, at!.last) ? holder[at!.last] : undefined;
          const keyFault = holder !== null && typeof holder === 'object' && Object.keys(holder).some((k) => !isWellFormed(k) && k.replace(/[\uD800-\uDFFF]/g, '\uFFFD') === at!.last.replace(/[\uD800-\uDFFF]/g, '\uFFFD'));
          expect(keyFault || (typeof named === 'string' && !isWellFormed(named)), d.error.field).toBe(true);
          return;
        }
        expect(d.ok).toBe(true);
        if (!d.ok) return;
        for (const e of eventsOf(d.value, 1000).events) {
          const v = validateEvent(e, 'acme', Date.now(), 16, limits);
          if (v.ok) {
            expect(JSON.parse(v.entry.properties)).toEqual(event.properties ?? {});
            expect(v.entry.type).toBe(event.type);
          } else expect(v.rejection.path === '' || v.rejection.path.startsWith('/')).toBe(true);
        }
      }),
      opts(RUNS),
    );
    // Both sides of the property were reached.
    expect(Math.min(seen.text, seen.notText)).toBeGreaterThan(RUNS / 20);
  });

  it('fuzz.integers-and-floats-at-the-edges-are-kept-exactly-or-refused-at-their-pointer', async () => {
    const edge = fc.oneof(
      fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((b) => b.toString()),
      fc.constantFrom(9007199254740991n, 9007199254740992n, -9007199254740991n, -9007199254740992n, 2n ** 63n, 2n ** 64n).map(String),
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => JSON.stringify(x)),
      fc.tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: -999, max: 999 })).map(([m, e]) => `${m}e${e}`),
      fc.constantFrom('1e308', '1.7976931348623157e308', '1.8e308', '5e-324', '2e-324', '1e-400', '-0', '0.1', '-0.0e5', '123456789012345678901234567890.5'),
    );
    await fc.assert(
      fc.asyncProperty(edge, fc.constantFrom('plain', 'spaced', 'array'), async (literal, layout) => {
        const body = {
          plain: `{"type":"n","properties":{"x":${literal}}}`,
          spaced: `{ "type" : "n" ,\n "properties" : { "x" :\t ${literal} } }`,
          array: `{"type":"n","properties":{"x":[ 1 ,\r\n ${literal}]}}`,
        }[layout];
        const d = await decode(body);
        if (!d.ok) {
          expect(d.error.field).toBe(layout === 'array' ? '/properties/x/1' : '/properties/x');
          return;
        }
        const sent = (d.value as { properties: { x: number | number[] } }).properties.x;
        const x = Array.isArray(sent) ? sent[1]! : sent;
        expect(Number.isFinite(x)).toBe(true);
        if (/^-?\d+$/.test(literal)) expect(BigInt(x)).toBe(BigInt(literal)); // an integer is kept exactly
        else {
          expect(x).toBe(Number(literal)); // a double is the double the literal names
          if (x === 0) expect(/[1-9]/.test(literal.split(/[eE]/)[0]!)).toBe(false); // never a non-zero turned to 0
        }
        // What is stored reads back as the same number.
        const v = validateEvent(d.value, 'acme', Date.now(), 16, limits);
        expect(v.ok).toBe(true);
        if (v.ok) expect(JSON.parse(v.entry.properties).x).toEqual(JSON.parse(JSON.stringify(sent)));
      }),
      opts(RUNS * 3),
    );
  });

  it('fuzz.rfc3339-timestamps-from-the-grammar-are-the-instant-they-name', () => {
    const two = (n: number) => String(n).padStart(2, '0');
    const stamp = fc
      .record({
        y: fc.integer({ min: 0, max: 9999 }),
        mo: fc.integer({ min: 1, max: 12 }),
        d: fc.integer({ min: 1, max: 31 }),
        h: fc.integer({ min: 0, max: 23 }),
        mi: fc.integer({ min: 0, max: 59 }),
        s: fc.integer({ min: 0, max: 60 }),
        frac: fc.option(fc.stringMatching(/^\d{1,15}$/), { nil: undefined }),
        t: fc.constantFrom('T', 't', ' '),
        zone: fc.oneof(fc.constantFrom('Z', 'z'), fc.record({ sign: fc.constantFrom('+', '-'), oh: fc.integer({ min: 0, max: 23 }), om: fc.integer({ min: 0, max: 59 }) })),
      })
      .filter(({ y, mo, d }) => {
        const date = new Date(0);
        date.setUTCFullYear(y, mo - 1, d);
        return date.getUTCDate() === d; // days that exist
      });
    fc.assert(
      fc.property(stamp, ({ y, mo, d, h, mi, s, frac, t, zone }) => {
        const z = typeof zone === 'string' ? zone : `${zone.sign}${two(zone.oh)}:${two(zone.om)}`;
        const text = `${String(y).padStart(4, '0')}-${two(mo)}-${two(d)}${t}${two(h)}:${two(mi)}:${two(s)}${frac === undefined ? '' : `.${frac}`}${z}`;
        const parsed = parseRfc3339Detailed(text);
        expect(parsed, text).not.toBeNull();
        const base = new Date(0);
        base.setUTCFullYear(y, mo - 1, d);
        base.setUTCHours(h, mi, s === 60 ? 59 : s, s === 60 ? 999 : frac === undefined ? 0 : Number(frac.slice(0, 3).padEnd(3, '0')));
        const offset = typeof zone === 'string' ? 0 : (zone.sign === '+' ? 1 : -1) * (zone.oh * 60 + zone.om) * 60_000;
        expect(parsed!.ms, text).toBe(base.getTime() - offset);
        expect(parsed!.leapSecond).toBe(s === 60);
      }),
      opts(RUNS * 3),
    );
    // Anything else is null, never a throw or a different instant.
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        const r = parseRfc3339Detailed(s);
        if (r !== null) expect(Number.isFinite(r.ms)).toBe(true);
      }),
      opts(RUNS),
    );
  });
});

describe('fuzz: through the pipeline, reads keep working', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline();
  });
  afterAll(async () => {
    const c = await checkConservation({ log: p.log, store: p.store, catalog: p.catalog }, Date.now() + 120_000, 3_600_000);
    expect(c.unbalanced).toEqual([]);
    expect(c.gapByTenant.get('acme') ?? 0).toBe(0);
    await p.close();
  });

  it('fuzz.events-with-hostile-strings-and-edge-numbers-are-stored-or-refused-and-queries-answer', async () => {
    let refused = 0;
    const num = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom('NaN', '-inf', 'Infinity', '1e400', 1e308, -1e308, 9007199254740991));
    let expected = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ s: text, n: num, k: text }), { minLength: 1, maxLength: 5 }), async (rows) => {
        const body = JSON.stringify(rows.map((r, i) => ({ type: 'fz', idempotency_key: `fz-${expected}-${i}`, properties: { s: r.s, amount: r.n, [r.k]: r.s } })));
        const res = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}`, 'content-type': 'application/json' }, payload: body });
        if (res.statusCode === 202) {
          expect(res.json().rejected).toEqual([]);
          expected += rows.length;
        } else {
          refused++;
          expect(res.statusCode).toBe(400);
          expect(res.json().field).toMatch(/^\/\d+\/properties\//);
        }
        await until(async () => (await p.store.rawStats('acme')).events === expected);
        for (const measures of [['count', 'sum:amount', 'avg:amount', 'max:amount', 'uniq:s'], ['count']]) {
          const q = await p.app.inject({
            method: 'POST',
            url: '/v1/query',
            headers: { authorization: `Bearer ${p.tenant.readKey}`, 'content-type': 'application/json' },
            payload: JSON.stringify({ event: 'fz', from: '-1h', to: 'now', interval: null, group_by: ['properties.s'], measures, limit: 1000 }),
          });
          expect(q.statusCode, q.body).toBe(200);
          for (const row of q.json().rows as unknown[][]) for (const c of row.slice(1)) expect(c === null || Number.isFinite(c)).toBe(true);
        }
      }),
      opts(Math.max(20, Math.floor(RUNS / 10))),
    );
    expect((await p.store.rawStats('acme')).events).toBe(expected);
    expect(expected).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });
});
