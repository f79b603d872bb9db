import { describe, expect, it } from 'vitest';
import { incompatibilities } from '../../src/schema/compat.js';
import { diff, formatDiff } from '../../src/schema/diff.js';
import { compile, newAjv } from '../../src/schema/registry.js';

const base = {
  type: 'object',
  required: ['amount'],
  properties: { amount: { type: 'number', minimum: 0 }, currency: { enum: ['EUR', 'USD'] }, note: { type: 'string', maxLength: 100 } },
};
const paths = (o: Record<string, unknown>, n: Record<string, unknown>) => incompatibilities(o, n).map((i) => i.path);

describe('schema compatibility: the new version accepts what the old one accepted', () => {
  it('accepts widening changes', () => {
    expect(incompatibilities(base, base)).toEqual([]);
    expect(incompatibilities(base, { ...base, required: [] })).toEqual([]); // no longer required
    expect(incompatibilities(base, { ...base, properties: { ...base.properties, amount: { type: ['number', 'string'], minimum: -10 } } })).toEqual([]);
    expect(incompatibilities(base, { ...base, properties: { ...base.properties, currency: { enum: ['EUR', 'USD', 'GBP'] } } })).toEqual([]);
    expect(incompatibilities(base, { ...base, properties: { ...base.properties, note: { type: 'string', maxLength: 200 } } })).toEqual([]);
    expect(incompatibilities(base, { ...base, description: 'checkout', title: 'Checkout' })).toEqual([]);
    expect(incompatibilities({ ...base, additionalProperties: false }, base)).toEqual([]); // opened up
    expect(incompatibilities(base, { type: 'object' })).toEqual([]);
    // integer → number widens; number → integer narrows.
    expect(incompatibilities({ properties: { n: { type: 'integer' } } }, { properties: { n: { type: 'number' } } })).toEqual([]);
  });

  it('names each narrowing with its path', () => {
    expect(paths(base, { ...base, required: ['amount', 'currency'] })).toEqual(['/properties/currency']);
    expect(paths(base, { ...base, properties: { ...base.properties, amount: { type: 'integer' } } })).toEqual(['/properties/amount']);
    expect(paths(base, { ...base, properties: { ...base.properties, amount: { type: 'number', minimum: 1 } } })).toEqual(['/properties/amount']);
    expect(paths(base, { ...base, properties: { ...base.properties, currency: { enum: ['EUR'] } } })).toEqual(['/properties/currency']);
    expect(paths(base, { ...base, properties: { ...base.properties, note: { type: 'string', maxLength: 10 } } })).toEqual(['/properties/note']);
    expect(paths(base, { ...base, additionalProperties: false, properties: { amount: base.properties.amount, currency: base.properties.currency } })).toEqual(
      expect.arrayContaining(['/properties/note', '/properties/*']),
    );
    // A new property constrains what was free before (any value was accepted under that name).
    expect(paths(base, { ...base, properties: { ...base.properties, sku: { type: 'string' } } })).toEqual(['/properties/sku']);
    expect(paths(base, { ...base, properties: { ...base.properties, note: { type: 'string', pattern: '^[a-z]+$' } } })).toEqual(['/properties/note']);
    // Keywords it cannot reason about count as narrowing when they change.
    expect(incompatibilities(base, { ...base, oneOf: [{ required: ['a'] }, { required: ['b'] }] })[0]!.message).toMatch(/cannot prove/);
    expect(paths({ properties: { tags: { type: 'array', items: { type: 'string' } } } }, { properties: { tags: { type: 'array', items: { type: 'string', minLength: 2 } } } })).toEqual(['/properties/tags/*']);
    expect(paths(true as never, false as never)).toEqual(['/properties']);
  });
});

describe('schema diff', () => {
  it('lists additions, removals and changes as JSON pointers', () => {
    const d = diff(base, { ...base, required: ['amount', 'currency'], properties: { amount: base.properties.amount, currency: base.properties.currency, sku: { type: 'string' } } });
    expect(d).toEqual([
      { op: 'change', path: '/required', from: ['amount'], to: ['amount', 'currency'] },
      { op: 'remove', path: '/properties/note', from: { type: 'string', maxLength: 100 } },
      { op: 'add', path: '/properties/sku', to: { type: 'string' } },
    ]);
    expect(formatDiff(d).split('\n')[0]).toBe('~ /required: ["amount"] → ["amount","currency"]');
    expect(formatDiff([])).toBe('(no changes)');
  });
});

describe('compiled schemas', () => {
  it('report the first violation as a JSON pointer into the event and a sentence', () => {
    const c = compile(newAjv(), { ...base, additionalProperties: false, properties: { ...base.properties, email: { type: 'string', format: 'email' } } }, 3, 'payments');
    expect(c.version).toBe(3);
    expect(c.check({ amount: 3, currency: 'EUR' })).toBeNull();
    expect(c.check({ amount: -1 })).toEqual({ path: '/properties/amount', message: '"amount" must be >= 0' });
    expect(c.check({})).toEqual({ path: '/properties/amount', message: '"amount" is required by the schema' });
    expect(c.check({ amount: 1, currency: 'JPY' })).toEqual({ path: '/properties/currency', message: '"currency" must be equal to one of the allowed values: "EUR", "USD"' });
    expect(c.check({ amount: 1, extra: 1 })).toEqual({ path: '/properties/extra', message: 'property "extra" is not allowed by the schema' });
    expect(c.check({ amount: 1, email: 'not an email' })!.path).toBe('/properties/email');
  });

  it('compiled-schemas.cost-at-most-linear-time-in-the-event-url-format-and-unique-items', () => {
    // "url": ajv-formats' regular expression took 0.56 s on "http://" and 32,000 colons.
    const url = compile(newAjv(), { type: 'object', properties: { u: { type: 'string', format: 'url' } } }, 1, 'x');
    // Ten times that: the quadratic one would take about a minute (past the test's time), linear parsing a millisecond.
    expect(url.check({ u: `http://${':'.repeat(320_000)}` })!.path).toBe('/properties/u');
    for (const ok of ['https://example.com/a?b=c#d', 'http://127.0.0.1:8080/', 'ftp://files.example.org/x']) expect(url.check({ u: ok }), ok).toBeNull();
    for (const bad of ['example.com', 'mailto:a@b.c', 'http://', 'javascript:alert(1)', 'http://x/a b', 'http://a/<script>', 'http://exa\nmple.com/', 'http://x:99999/']) expect(url.check({ u: bad }), bad).not.toBeNull();
    // uniqueItems over objects is pairwise: refused without a small maxItems, naming the place.
    expect(() => compile(newAjv(), { type: 'object', properties: { arr: { type: 'array', uniqueItems: true } } }, 1, 'x', true)).toThrow(
      expect.objectContaining({ field: 'schema/properties/arr/uniqueItems', message: expect.stringMatching(/maxItems" of at most 100/) }),
    );
    expect(() => compile(newAjv(), { type: 'object', properties: { arr: { type: 'array', uniqueItems: true, items: { type: 'object' } } } }, 1, 'x', true)).toThrow(/uniqueItems/);
    // A version stored before these bounds still compiles (at ingest, and as a publish's previous version).
    expect(compile(newAjv(), { type: 'object', properties: { arr: { type: 'array', uniqueItems: true } } }, 1, 'x').check({ arr: [{ a: 1 }, { a: 2 }] })).toBeNull();
    // Scalar items (a map, linear) or a bounded array are fine.
    const tags = compile(newAjv(), { type: 'object', properties: { tags: { type: 'array', uniqueItems: true, items: { type: 'string' } }, pairs: { type: 'array', uniqueItems: true, maxItems: 100 } } }, 1, 'x');
    expect(tags.check({ tags: ['a', 'b'] })).toBeNull();
    expect(tags.check({ tags: ['a', 'a'] })!.path).toBe('/properties/tags');
  });

  it('refuse what is not a JSON Schema 2020-12, with the reason', () => {
    expect(() => compile(newAjv(), [], 1, 'x')).toThrow(/must be a JSON Schema object/);
    expect(() => compile(newAjv(), { type: 'objekt' }, 1, 'x')).toThrow(/not valid JSON Schema/);
    expect(() => compile(newAjv(), { typo_keyword: 1 }, 1, 'x')).toThrow(/unknown keyword/);
    expect(() => compile(newAjv(), { $schema: 'http://json-schema.org/draft-07/schema#' }, 1, 'x')).toThrow(/2020-12/);
    expect(() => compile(newAjv(), { description: 'x'.repeat(70_000) }, 1, 'x')).toThrow(/larger than/);
    // 3,000 levels of {"not": …} (24 KB) overflowed the stack: a 500. Now a 400 before any recursion.
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 3_000; i++) deep = { not: deep };
    expect(() => compile(newAjv(), deep, 1, 'x', true)).toThrow(expect.objectContaining({ code: 'SLUICE_ERR_INVALID_BODY', message: 'the schema nests deeper than 128 levels' }));
    // An event nested 30 levels deep is still described.
    let nested: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 30; i++) nested = { type: 'object', properties: { a: nested } };
    expect(() => compile(newAjv(), nested, 1, 'x', true)).not.toThrow();
    // 700 properties of two anyOf branches (61 KB, within the size limit): 4.7 s of Ajv's code
    // generation on the HTTP thread per publish. Refused before Ajv sees it.
    const props = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, { anyOf: [{ type: 'string', format: 'email' }, { type: 'integer', minimum: i }] }]));
    const t0 = performance.now();
    expect(() => compile(newAjv(), { type: 'object', properties: props(700) }, 1, 'x', true)).toThrow(
      expect.objectContaining({ code: 'SLUICE_ERR_INVALID_BODY', field: 'schema', message: expect.stringContaining('more than 500 objects') }),
    );
    expect(performance.now() - t0).toBeLessThan(100);
    // A type of a hundred such properties is still a schema; a version stored before the bound compiles as it did.
    expect(() => compile(newAjv(), { type: 'object', properties: props(100) }, 1, 'x', true)).not.toThrow();
    expect(() => compile(newAjv(), { type: 'object', properties: props(200) }, 1, 'x')).not.toThrow();
  });
});
