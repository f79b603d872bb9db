import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { parseField, parseMeasure } from '../../src/core/query.js';
import { parseFilterFlag, splitOutsideQuotes } from '../../src/cli/query.js';

describe('quoted field names', () => {
  it('fields.quote-names-that-are-not-identifiers-and-name-them-canonically', () => {
    expect(parseField('properties["price.eur"]', 'f')).toEqual({ name: 'properties["price.eur"]', column: 'properties', path: '$."price.eur"', names: ['price.eur'] });
    expect(parseField('properties["region"]', 'f')).toEqual({ name: 'properties.region', column: 'properties', path: '$."region"', names: ['region'] });
    expect(parseField('context["a b"].c["x\\"y"]', 'f')).toMatchObject({ name: 'context["a b"].c["x\\"y"]', path: '$."a b"."c"."x\\"y"', names: ['a b', 'c', 'x"y'] });
    expect(parseField('properties.constructor', 'f').names).toEqual(['constructor']);
    for (const bad of ['properties["__proto__"]', 'properties.__proto__', 'properties[price]', 'properties[""]', "properties['a']", 'properties["a"', 'properties.a..b']) {
      expect(() => parseField(bad, 'f'), bad).toThrow();
    }
    // "*" is every member to DuckDB's JSONPath, which does not unescape control characters
    // either: those paths are JSON Pointers, which read the member named so.
    expect(parseField('properties["*"]', 'f')).toMatchObject({ path: '/*', names: ['*'] });
    expect(parseField('context.x["a\\nb"]["c/d~e"]', 'f')).toMatchObject({ path: '/x/a\nb/c~1d~0e', names: ['x', 'a\nb', 'c/d~e'] });
    expect(parseField('properties["a*b"]', 'f').path).toBe('$."a*b"');
    // A bare measure name is one property, whole; a nested field is written out.
    expect(parseMeasure('sum:subscription.price_per_month', 'm').field).toMatchObject({ names: ['subscription.price_per_month'] });
    expect(parseMeasure('sum:properties.subscription.price_per_month', 'm').field).toMatchObject({ names: ['subscription', 'price_per_month'] });
    expect(parseMeasure('sum:amount', 'm').field).toMatchObject({ name: 'properties.amount' });
  });

  it('cli.filter-and-group-by-flags-keep-quoted-names-whole', () => {
    expect(parseFilterFlag('properties["a:b"]:gt:5')).toEqual({ field: 'properties["a:b"]', op: 'gt', value: 5 });
    expect(parseFilterFlag('properties["price.eur"]:in:1,2')).toEqual({ field: 'properties["price.eur"]', op: 'in', value: [1, 2] });
    expect(parseFilterFlag('key:eq:a:b')).toEqual({ field: 'key', op: 'eq', value: 'a:b' });
    expect(splitOutsideQuotes('properties.region,properties["a,b"],key')).toEqual(['properties.region', 'properties["a,b"]', 'key']);
  });

  it('config.cors-origins-from-the-environment-are-comma-separated', () => {
    expect(loadConfig({ env: { SLUICE_CORS_ORIGINS: 'https://a.example, https://b.example' } }).cors).toEqual({ origins: ['https://a.example', 'https://b.example'], tenants: {} });
    expect(loadConfig({ env: {} }).cors).toEqual({ origins: ['*'], tenants: {} });
  });
});
