import { describe, expect, it } from 'vitest';
import { errorSignature, foldPath, messageTemplate } from '../../src/core/signature.js';
import { DeadLetterBreaker } from '../../src/worker/breaker.js';
import { anonymizeIp, enrich, parseUserAgent } from '../../src/worker/enrich.js';
import { entry } from '../helpers/entries.js';

describe('error signatures', () => {
  it('group the same failure whatever its values and array indices', () => {
    expect(messageTemplate('"amount" must be >= 0, got -12.5 in "EUR"')).toBe('"…" must be >= N, got N in "…"');
    expect(foldPath('/properties/items/12/price')).toBe('/properties/items/*/price');
    expect(errorSignature('schema_violation', '/properties/items/0/price', 'price 3 is too low')).toBe(
      errorSignature('schema_violation', '/properties/items/9/price', 'price 77 is too low'),
    );
    expect(errorSignature('schema_violation', '/a', 'x')).not.toBe(errorSignature('too_late', '/a', 'x'));
  });
});

describe('the dead-letter ratio breaker', () => {
  it('trips only past the ratio over the window, after the minimum of events, and starts again', () => {
    const b = new DeadLetterBreaker({ ratio: 0.5, window: 100, minEvents: 20 });
    expect(b.record('t', 0, 15)).toBeNull(); // too few to judge
    expect(b.record('t', 10, 0)).toBeCloseTo(0.6); // 15 of 25 once 20 are seen
    expect(b.record('t', 10, 10)).toBeNull(); // it started again: 20 events, 50% is not more than 50%
    expect(b.record('t', 0, 1)).toBeCloseTo(11 / 21);
  });

  it('judges the last K events, not all of history', () => {
    const b = new DeadLetterBreaker({ ratio: 0.5, window: 100, minEvents: 20 });
    expect(b.record('t', 1_000, 0)).toBeNull();
    expect(b.record('t', 0, 50)).toBeNull(); // 50 of the last 100
    expect(b.record('t', 0, 1)).toBeCloseTo(0.51);
    expect(b.record('t', 0, 19)).toBeNull(); // it started again: 19 < minEvents
    expect(b.record('other', 100, 0)).toBeNull(); // tenants apart
  });
});

describe('built-in enrichers', () => {
  it('anonymize IPv4 and IPv6 addresses and drop what is not an address', () => {
    expect(anonymizeIp('203.0.113.77')).toBe('203.0.113.0');
    expect(anonymizeIp('2001:db8:85a3:8d3:1319:8a2e:370:7348')).toBe('2001:db8:85a3::');
    expect(anonymizeIp('2001:db8::1')).toBe('2001:db8:0::');
    expect(anonymizeIp('not-an-ip')).toBeNull();
  });

  it('parse a user agent into browser, os and device', () => {
    const ua = parseUserAgent('Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1');
    expect(ua).toMatchObject({ browser: { name: 'Mobile Safari', major: '17' }, os: { name: 'iOS' }, device: { type: 'mobile', vendor: 'Apple' } });
    expect(parseUserAgent('')).toBeNull();
  });

  it('rewrite only the contexts that carry an ip or a user agent, and run plugins with per-event results', async () => {
    const plain = { ...entry('t', 1, 16), offset: 1, attempt: 1 };
    const withIp = { ...entry('t', 2, 16), context: '{"ip":"10.1.2.3","user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}', offset: 2, attempt: 1 };
    const failing = { ...entry('t', 3, 16), properties: '{"fail":true}', offset: 3, attempt: 1 };
    const out = await enrich([plain, withIp, failing], {
      anonymizeIp: true,
      userAgent: true,
      plugins: [{ name: 'flag', enrich: (batch) => batch.map((e) => (e.properties.fail ? { ok: false, permanent: true, message: 'no' } : { ok: true, properties: { ...e.properties, seen: true } })) }],
    }, new AbortController().signal);
    expect(out.failed.map((f) => [f.record.offset, f.message])).toEqual([[3, 'flag: no']]);
    expect(out.records.map((r) => r.offset)).toEqual([1, 2]);
    expect(JSON.parse(out.records[1]!.context)).toEqual({ ip: '10.1.2.0', user_agent: expect.stringContaining('Firefox'), ua: { browser: { name: 'Firefox', version: '128.0', major: '128' }, os: { name: 'Linux' }, engine: { name: 'Gecko', version: '128.0' } } });
    expect(JSON.parse(out.records[0]!.properties)).toMatchObject({ seen: true });
    await expect(
      enrich([plain], { anonymizeIp: false, userAgent: false, plugins: [{ name: 'down', enrich: () => [{ ok: false, permanent: false, message: 'lookup timed out' }] }] }, new AbortController().signal),
    ).rejects.toMatchObject({ code: 'SLUICE_RETRY_AFTER' });
  });
});
