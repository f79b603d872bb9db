import { afterEach, describe, expect, it } from 'vitest';
import { compile, newAjv } from '../../src/schema/registry.js';
import { freshnessMs, quantile, steadyIngest } from '../helpers/neighbour.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

// 30 bytes that make a backtracking engine try 2^29 ways of splitting the a's.
const HOSTILE = `${'a'.repeat(29)}!`;

describe('user-supplied patterns run in linear time', () => {
  it('regex.a-catastrophic-pattern-checks-a-hostile-value-in-milliseconds', () => {
    const c = compile(newAjv(), { type: 'object', properties: { code: { type: 'string', pattern: '^(a+)+$' } }, patternProperties: { '^(x+x+)+y$': { type: 'number' } } }, 1, 'growth');
    const t0 = performance.now();
    expect(c.check({ code: HOSTILE })).toMatchObject({ path: '/properties/code' });
    expect(c.check({ [`${'x'.repeat(40)}`]: 'not a number' })).toBeNull(); // no match: the name is not constrained
    expect(c.check({ [`${'x'.repeat(40)}y`]: 'not a number' })).toMatchObject({ path: '/properties/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxy' });
    expect(c.check({ code: 'aaaa' })).toBeNull();
    // JavaScript's engine takes seconds on the first value alone (2.5 s measured on a server).
    expect(performance.now() - t0).toBeLessThan(200);
  });

  it('regex.a-pattern-rE2-cannot-run-is-refused-naming-its-place', () => {
    const ajv = newAjv();
    expect(() => compile(ajv, { type: 'object', properties: { code: { type: 'string', pattern: '^(a)\\1$' } } }, 1, 'g')).toThrow(
      expect.objectContaining({ code: 'SLUICE_ERR_INVALID_BODY', field: 'schema/properties/code/pattern' }),
    );
    expect(() => compile(ajv, { type: 'object', patternProperties: { '^(?!tmp_)': { type: 'string' } } }, 1, 'g')).toThrow(
      expect.objectContaining({ field: 'schema/patternProperties' }),
    );
    expect(() => compile(ajv, { type: 'object', properties: { a: { items: { pattern: 'x(?=y)' } } } }, 1, 'g')).toThrow(
      expect.objectContaining({ field: 'schema/properties/a/items/pattern' }),
    );
    // A property named "pattern", or data that looks like a pattern, is not a pattern.
    expect(() => compile(ajv, { type: 'object', properties: { pattern: { type: 'string' } }, examples: [{ pattern: '(a)\\1' }] }, 1, 'g')).not.toThrow();
  });

  it('regex.tenant-b-is-unaffected-while-tenant-a-sends-values-against-a-catastrophic-pattern', async () => {
    p = await startPipeline();
    const a = p.tenant;
    const b = await p.catalog.createTenant('beta');
    const hostileSchema = { type: 'object', properties: { code: { type: 'string', pattern: '^(a+)+$' } } };
    const put = await p.app.inject({ method: 'PUT', url: '/v1/schemas/probe', headers: { authorization: `Bearer ${a.adminKey}` }, payload: { owner: 'mallory', schema: hostileSchema } });
    expect(put.statusCode).toBe(201);

    const plain = await p.app.inject({ method: 'PUT', url: '/v1/schemas/plain', headers: { authorization: `Bearer ${a.adminKey}` }, payload: { owner: 'mallory', schema: { type: 'object', properties: { code: { type: 'string', pattern: '^a+$' } } } } });
    expect(plain.statusCode).toBe(201);

    // The same traffic from tenant a in both runs; only the pattern differs.
    let attacks = 0;
    const run = async (type: 'plain' | 'probe', prefix: string, batches: number) => {
      let going = true;
      const attacker = (async () => {
        const ts = new Date().toISOString();
        while (going) {
          const events = Array.from({ length: 20 }, (_, i) => ({ type, idempotency_key: `${prefix}-${attacks}-${i}`, ts, properties: { code: HOSTILE } }));
          await p!.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${a.writeKey}` }, payload: events });
          attacks++;
        }
      })();
      const r = await steadyIngest(p!, b.writeKey, prefix, batches);
      going = false;
      await attacker;
      return { ...r, freshness: await freshnessMs(p!, 'beta', prefix, batches * 20) };
    };
    // Alternating runs, so that the machine's other load weighs on both alike.
    const quiet = { ingestMs: [] as number[], freshness: [] as number[], statuses: new Map<number, number>() };
    const loud = { ingestMs: [] as number[], freshness: [] as number[], statuses: new Map<number, number>() };
    for (let round = 0; round < 4; round++) {
      for (const [type, into] of [['plain', quiet], ['probe', loud]] as const) {
        const r = await run(type, `${type}-${round}`, 20);
        into.ingestMs.push(...r.ingestMs);
        into.freshness.push(...r.freshness);
        for (const [s, n] of r.statuses) into.statuses.set(s, (into.statuses.get(s) ?? 0) + n);
      }
    }

    expect(attacks).toBeGreaterThan(5);
    expect([...quiet.statuses.keys(), ...loud.statuses.keys()]).toEqual([202, 202]);
    const p99quiet = quantile(quiet.ingestMs, 0.99);
    const p99loud = quantile(loud.ingestMs, 0.99);
    console.info(`beta's ingest p99: ${p99loud.toFixed(1)} ms while alpha's values met ^(a+)+$, ${p99quiet.toFixed(1)} ms while they met ^a+$ (${attacks} batches of alpha's in all)`);
    // Within 2x of the quiet run, with a floor of 25 ms for a shared two-core machine's noise.
    expect(p99loud, `B's ingest p99: ${p99loud.toFixed(1)} ms under attack, ${p99quiet.toFixed(1)} ms without`).toBeLessThan(2 * Math.max(p99quiet, 25));
    // B's freshness (received → stored), p99 within 2x, with a floor of 250 ms (the workers' polling).
    const [f99quiet, f99loud] = [quantile(quiet.freshness, 0.99), quantile(loud.freshness, 0.99)];
    console.info(`beta's freshness p99: ${f99loud.toFixed(0)} ms under attack, ${f99quiet.toFixed(0)} ms without`);
    expect(f99loud, `B's freshness p99: ${f99loud} ms under attack, ${f99quiet} ms without`).toBeLessThan(2 * Math.max(f99quiet, 250));
    await until(async () => (await p!.store.rawStats('beta')).events === 8 * 20 * 20);
  });
});
