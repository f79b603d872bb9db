import { describe, expect, it } from 'vitest';
import { expireSilence, matcherRegExp, matches, parseSilence, pastRetention, SILENCE_RETENTION_MS, silenceJson } from '../../src/alerts/silences.js';
import { refusal } from '../helpers/alerts.js';

/**
 * Silence matchers: a regex runs on RE2 (linear time: a catastrophic pattern against a
 * tenant-chosen label costs microseconds), a pattern RE2 cannot run is refused naming the
 * matcher's field, and every field of a matcher is checked (no truthy strings for booleans,
 * no unknown fields dropped, no empty names).
 */

const H = 3_600_000;
const NOW = Date.UTC(2026, 0, 1, 12);


const silence = (matchers: unknown[]) => parseSilence({ matchers, ends_at: new Date(NOW + H).toISOString(), comment: 'test' }, 'k', NOW);

describe('silence matchers', () => {
  it('silence.regex-matchers-run-on-re2-so-a-catastrophic-pattern-is-linear', () => {
    // `(a+)+$` against 31 a's and a "-" backtracks 2^31 times in JavaScript's engine (seconds); RE2 is linear.
    const s = silence([{ name: 'alertname', value: '(a+)+$', isRegex: true }]);
    const label = `${'a'.repeat(31)}-`;
    const started = performance.now();
    for (let i = 0; i < 100; i++) expect(matches(s.matchers, { alertname: label })).toBe(false);
    // A generous bound: 100 matches in RE2 take a few milliseconds; one in a backtracking engine takes seconds.
    expect(performance.now() - started).toBeLessThan(1_000);
    // The pattern is compiled by RE2 (re2js), anchored as Alertmanager's: the whole label must match.
    expect(matcherRegExp('(a+)+$')?.constructor.name).toBe('RE2JS');
    expect(matches(s.matchers, { alertname: 'aaaa' })).toBe(true);
    expect(matches(silence([{ name: 'alertname', value: 'check.*', isRegex: true }]).matchers, { alertname: 'checkout-errors' })).toBe(true);
    expect(matches(silence([{ name: 'alertname', value: 'check', isRegex: true }]).matchers, { alertname: 'checkout-errors' })).toBe(false);
    expect(matches(silence([{ name: 'severity', value: 'page' }, { name: 'alertname', value: 'check.*', isRegex: true, isEqual: false }]).matchers, { alertname: 'checkout-errors', severity: 'page' })).toBe(false);
  });

  it('silence.a-pattern-re2-cannot-run-is-refused-naming-the-matcher-field', () => {
    for (const value of ['(?<x>a)\\k<x>', '(a)\\1', 'a(?=b)', '(?<!a)b']) {
      const e = refusal(() => silence([{ name: 'alertname', value: 'x' }, { name: 'team', value, isRegex: true }]));
      expect([e.code, e.field]).toEqual(['SLUICE_ERR_INVALID_BODY', 'matchers[1].value']);
      expect(e.message).toContain('RE2');
    }
    // RE2's own reason, quoting the pattern as typed (not the anchored `^(?:…)$` it runs as).
    const bracket = refusal(() => silence([{ name: 'alertname', value: '[', isRegex: true }]));
    expect([bracket.field, bracket.message]).toEqual(['matchers[0].value', 'matchers[0].value "[" is not a regular expression sluice can run (RE2, linear time): missing closing ]: `[`']);
    expect(refusal(() => silence([{ name: 'alertname', value: 'a{2,1}', isRegex: true }])).message).toContain('invalid repeat count: `{2,1}`');
    expect(refusal(() => silence([{ name: 'alertname', value: 'a(?=b)', isRegex: true }])).message).toMatch(/invalid or unsupported Perl syntax: `\(\?=`; RE2 has no backreferences or lookaround/);
    // The same value is no pattern when isRegex is false: accepted, compared as text.
    expect(silence([{ name: 'team', value: '(a)\\1' }]).matchers[0]).toEqual({ name: 'team', value: '(a)\\1', isRegex: false, isEqual: true });
    // A silence stored before the check, with such a pattern, matches nothing rather than throwing.
    expect(matches([{ name: 'team', value: '(a)\\1', isRegex: true, isEqual: true }], { team: 'aa' })).toBe(false);
  });

  it('silence.matchers-refuse-non-boolean-flags-unknown-fields-and-empty-names', () => {
    const cases: [unknown, string][] = [
      [{ name: 'alertname', value: 'x', isRegex: 'yes' }, 'matchers[0].isRegex'],
      [{ name: 'alertname', value: 'x', isEqual: 0 }, 'matchers[0].isEqual'],
      [{ name: 'alertname', value: 'x', regex: true }, 'matchers[0].regex'],
      [{ name: '', value: 'x' }, 'matchers[0].name'],
      [{ name: 'team-name', value: 'x' }, 'matchers[0].name'],
      [{ value: 'x' }, 'matchers[0].name'],
      [{ name: 'alertname', value: 3 }, 'matchers[0].value'],
      [null, 'matchers[0]'],
      ['alertname=x', 'matchers[0]'],
    ];
    for (const [m, field] of cases) expect([m, refusal(() => silence([m])).field]).toEqual([m, field]);
    expect(refusal(() => silence([{ name: 'alertname', value: 'x', isRegex: 'yes' }])).message).toMatch(/matchers\[0\]\.isRegex must be true or false/);
    expect(silence([{ name: 'severity', value: 'page' }, { name: 'alertname', value: 'x', isRegex: false, isEqual: false }]).matchers[1]).toEqual({ name: 'alertname', value: 'x', isRegex: false, isEqual: false });
  });

  it('silence.matchers-that-all-match-the-empty-string-are-refused-as-alertmanager-does', () => {
    for (const matchers of [
      [{ name: 'alertname', value: '.*', isRegex: true }],
      [{ name: 'alertname', value: '' }],
      [{ name: 'team', value: 'web', isEqual: false }, { name: 'severity', value: 'x?', isRegex: true }],
    ]) {
      const e = refusal(() => silence(matchers));
      expect([e.field, e.message]).toEqual(['matchers', expect.stringContaining('at least one matcher must not match the empty string')]);
    }
    // One matcher that needs a value is enough.
    expect(silence([{ name: 'alertname', value: '.*', isRegex: true }, { name: 'team', value: 'web' }]).matchers).toHaveLength(2);
    expect(silence([{ name: 'alertname', value: '.+', isRegex: true }]).matchers).toHaveLength(1);
  });
});

describe('silence expiry', () => {
  it('silences.expiring-ends-it-now-keeps-it-listed-and-retention-deletes-it-after-120-h', () => {
    const now = Date.UTC(2026, 11, 1, 12);
    const s = parseSilence({ matchers: [{ name: 'alertname', value: 'x' }], ends_at: new Date(now + 4 * H).toISOString(), comment: 'deploy' }, 'k', now - H);
    const expired = expireSilence(s, now);
    expect(silenceJson(expired, now)).toMatchObject({ ends_at: new Date(now).toISOString(), status: { state: 'expired' } });
    // Expiring it again changes nothing; a pending one starts and ends now.
    expect(expireSilence(expired, now + H)).toBe(expired);
    const pending = parseSilence({ matchers: [{ name: 'alertname', value: 'x' }], starts_at: new Date(now + H).toISOString(), ends_at: new Date(now + 2 * H).toISOString(), comment: 'later' }, 'k', now);
    expect(expireSilence(pending, now)).toMatchObject({ startsAt: now, endsAt: now });
    // Listed as expired for 120 h (Alertmanager's default --data.retention), then deleted.
    expect(pastRetention(expired, now + SILENCE_RETENTION_MS)).toBe(false);
    expect(pastRetention(expired, now + SILENCE_RETENTION_MS + 1)).toBe(true);
    expect(SILENCE_RETENTION_MS).toBe(120 * H);
  });
});
