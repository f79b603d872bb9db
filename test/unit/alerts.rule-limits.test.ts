import { describe, expect, it } from 'vitest';
import { budgetOf } from '../../src/alerts/budget.js';
import { evaluateSlo, type SloSeries } from '../../src/alerts/evaluate.js';
import { backtest } from '../../src/alerts/replay.js';
import { BUILTIN_RULES, parseRule, type SloRule } from '../../src/alerts/rules.js';
import { refusal } from '../helpers/alerts.js';

/**
 * What a rule may say: a built-in's name takes only its built-in kind and the `sluice_` prefix
 * is reserved; a condition that can never fire is refused at its exact limit, with advice
 * below it; a threshold's window is at most 7d, `for` whole minutes up to 1d and an SLO's period
 * 1d to 90d; burn rates
 * and budgets carry no float noise, and are compared as shown, live and in a backtest.
 */

const M = 60_000;
const H = 60 * M;


describe('rule names', () => {
  const slo = { kind: 'slo', objective: 0.99, total: { event: 'req' }, bad: { event: 'req' } };

  it('rules.a-built-in-name-takes-only-kind-builtin', () => {
    for (const name of Object.keys(BUILTIN_RULES)) {
      for (const body of [slo, { kind: 'threshold', query: { event: 'x' }, window: '5m', condition: { op: 'gt', value: 0 } }]) {
        const e = refusal(() => parseRule(name, body));
        expect([e.code, e.field]).toEqual(['SLUICE_ERR_INVALID_BODY', 'kind']);
        expect(e.message).toContain(`"${name}" is a built-in rule: its name takes only {"kind": "builtin"`);
      }
    }
    expect(parseRule('sluice_conservation_gap', { kind: 'builtin', signal: 'conservation_gap', enabled: false })).toMatchObject({ kind: 'builtin', enabled: false });
  });

  it('rules.the-sluice-prefix-is-reserved-in-any-case', () => {
    for (const name of ['sluice_custom', 'SLUICE_FRESHNESS', 'Sluice_x']) {
      const e = refusal(() => parseRule(name, slo));
      expect([e.field, name]).toEqual(['name', name]);
      expect(e.message).toContain('reserved for sluice\'s built-in rules');
    }
    expect(refusal(() => parseRule('SLUICE_FRESHNESS', { kind: 'builtin', signal: 'freshness' })).message).toContain('did you mean "sluice_freshness"?');
    expect(parseRule('sluicey', slo).name).toBe('sluicey');
    // A rule stored before the names were reserved is still read (evaluated and listed).
    expect(parseRule('sluice_custom', slo, { stored: true }).name).toBe('sluice_custom');
  });
});

describe('limits', () => {
  it('rules.a-factor-at-the-objectives-limit-is-refused-and-the-advice-is-below-it', () => {
    // 10 × (1 − 0.9) = 1 (0.9999999999999998 in binary): a burn rate above 10 needs more than every event bad.
    const e = refusal(() => parseRule('x', { kind: 'slo', objective: 0.9, total: { event: 'a' }, bad: { event: 'a' }, windows: [{ severity: 'page', long: '1h', short: '5m', factor: 10 }] }));
    expect([e.field, e.message]).toEqual(['windows[0].factor', expect.stringContaining('can never fire: with objective 0.9 it fires only on a bad ratio above 1, and a ratio is at most 1')]);
    expect(e.message).toContain('use a factor below 10 or an objective above 0.9 (e.g. 0.91)');
    expect(parseRule('x', { kind: 'slo', objective: 0.9, total: { event: 'a' }, bad: { event: 'a' }, windows: [{ severity: 'page', long: '1h', short: '5m', factor: 9.99 }] })).toMatchObject({ kind: 'slo' });
    // The same for the built-in burn-rate rule: 1000 × (1 − 0.999) = 1.
    expect(refusal(() => parseRule('sluice_ingest_availability', { kind: 'builtin', signal: 'ingest_availability', windows: [{ severity: 'page', long: '1h', short: '5m', factor: 1000 }] })).message).toContain(
      'use a factor below 1000 ',
    );
  });

  it('rules.threshold-window-is-at-most-7d-and-for-whole-minutes-up-to-1d', () => {
    const t = (extra: Record<string, unknown>) => parseRule('x', { kind: 'threshold', query: { event: 'a' }, window: '5m', condition: { op: 'gt', value: 0 }, ...extra });
    expect(refusal(() => t({ window: '8d' })).field).toBe('window');
    expect(refusal(() => t({ window: '8d' })).message).toContain('at most 7d');
    expect(t({ window: '7d' })).toMatchObject({ window: 7 * 24 * H });
    expect(refusal(() => t({ for: '30s' })).message).toMatch(/"for" must be whole minutes/);
    expect(refusal(() => t({ for: '1000d' })).message).toMatch(/"for" is at most 1d/);
    expect(refusal(() => t({ for: '25h' })).field).toBe('for');
    expect(t({ for: '0s' })).toMatchObject({ for: 0 });
    expect(t({ for: '1d' })).toMatchObject({ for: 24 * H });
    expect(refusal(() => parseRule('sluice_freshness', { kind: 'builtin', signal: 'freshness', for: '90s' })).field).toBe('for');
    // Stored before the limits: still read.
    expect(parseRule('x', { kind: 'threshold', query: { event: 'a' }, window: '8d', condition: { op: 'gt', value: 0 }, for: '30s' }, { stored: true })).toMatchObject({ for: 30_000 });
  });

  it('rules.an-slo-period-is-1d-to-90d', () => {
    const s = (period: string) => parseRule('x', { kind: 'slo', objective: 0.99, total: { event: 'a' }, bad: { event: 'a' }, period });
    // A budget counts its period hour by hour: "1000d" would be 24,000 hours to count.
    expect([refusal(() => s('91d')).field, refusal(() => s('1000d')).message]).toEqual(['period', '"period" is at most 90d (a quarter), got "1000d"']);
    expect(refusal(() => s('12h')).message).toContain('at least 1d');
    expect(s('90d')).toMatchObject({ period: 90 * 24 * H });
    expect(s('4w')).toMatchObject({ period: 28 * 24 * H });
    // Stored before the limit: still read.
    expect(parseRule('x', { kind: 'slo', objective: 0.99, total: { event: 'a' }, bad: { event: 'a' }, period: '365d' }, { stored: true })).toMatchObject({ period: 365 * 24 * H });
  });
});

describe('burn rates without float noise', () => {
  const end = Date.UTC(2026, 0, 1, 12);
  // 1 % bad against 99.9 %: a burn rate of exactly 10 (0.01 / 0.0010000000000000009 = 9.999999999999991 in binary).
  const rule = parseRule('x', { kind: 'slo', objective: 0.999, total: { event: 'a' }, bad: { event: 'a' }, min_events: 1, windows: [{ severity: 'page', long: '1h', short: '5m', factor: 10 }] }) as SloRule;
  const series = (): SloSeries => {
    const s: SloSeries = { total: new Map(), bad: new Map() };
    for (let m = end - 2 * H; m < end; m += M) {
      s.total.set(m, 100);
      s.bad.set(m, 1);
    }
    return s;
  };

  it('evaluate.burn-rates-are-shown-and-compared-to-12-significant-digits-live-and-in-a-backtest', () => {
    const [page] = evaluateSlo(rule, series(), end);
    expect(page!.windows.map((w) => w.burn_rate)).toEqual([10, 10]);
    // Half the events bad against 90 %: exactly 5, which binary makes 5.000000000000001, above a
    // factor of 5. Not above it: neither live nor in a backtest does the condition fire.
    const half = parseRule('y', { kind: 'slo', objective: 0.9, total: { event: 'a' }, bad: { event: 'a' }, min_events: 1, windows: [{ severity: 'page', long: '1h', short: '5m', factor: 5 }] }) as SloRule;
    const s: SloSeries = { total: new Map(), bad: new Map() };
    for (let m = end - 2 * H; m < end; m += M) {
      s.total.set(m, 100);
      s.bad.set(m, 50);
    }
    const [at5] = evaluateSlo(half, s, end);
    expect([at5!.condition, at5!.windows.map((w) => w.burn_rate)]).toEqual(['ok', [5, 5]]);
    expect(backtest('acme', half, { slo: s }, end - H, end).transitions).toEqual([]);
    // One more bad event in the last minute: above 5 in both windows, it fires in both.
    s.bad.set(end - M, 51);
    expect(evaluateSlo(half, s, end)[0]!.condition).toBe('firing');
    expect(backtest('acme', half, { slo: s }, end - H, end).transitions.map((t) => `${t.from}->${t.to}@${(t.at - end) / M}`)).toEqual(['inactive->firing@0']);
  });

  it('budget.allowed-bad-and-burn-rates-have-no-float-noise', () => {
    const total = new Map([[end - H, 3]]);
    const bad = new Map([[end - H, 0]]);
    const b = budgetOf({ ...rule, period: 2 * H }, total, bad, end, H);
    expect(b.allowed).toBe(0.003);
    expect(b.remaining).toBe(1);
    const b2 = budgetOf({ ...rule, period: 2 * H }, new Map([[end - H, 100]]), new Map([[end - H, 1]]), end, H);
    expect(b2.buckets.map((x) => x.burn_rate)).toEqual([null, 10]);
  });

  it('rules.with-no-windows-sent-the-refusal-names-the-default-windows-and-an-objective-that-works', () => {
    const e = refusal(() => parseRule('x', { kind: 'slo', objective: 0.9, total: { event: 'a' }, bad: { event: 'a' } }));
    expect(e.field).toBe('objective');
    expect(e.message).toBe(
      'the page condition at 14.4× over 1h and 5m can never fire: with objective 0.9 it fires only on a bad ratio above 1.44, and a ratio is at most 1 (every event bad). ' +
        'You sent no "windows", so these are the default windows (the SRE workbook\'s multiwindow, multi-burn-rate alerts: page 14.4× over 1h/5m, page 6× over 6h/30m, ticket 3× over 1d/2h, ticket 1× over 3d/6h); "windows" overrides them. ' +
        'Use an objective above 0.930556 (e.g. 0.94), or send "windows" whose factors are below 10',
    );
    // The objective it gives works.
    expect(parseRule('x', { kind: 'slo', objective: 0.94, total: { event: 'a' }, bad: { event: 'a' } })).toMatchObject({ kind: 'slo', objective: 0.94 });
    // The built-in burn-rate rule's defaults too.
    const b = refusal(() => parseRule('sluice_ingest_availability', { kind: 'builtin', signal: 'ingest_availability', objective: 0.9 }));
    expect([b.field, b.message]).toEqual(['objective', expect.stringContaining('You sent no "windows", so these are the default windows')]);
  });

  it('rules.the-reserved-prefix-refusal-reads-as-a-sentence', () => {
    const e = refusal(() => parseRule('SLUICE_FRESHNESS', { kind: 'builtin', signal: 'freshness' }));
    expect(e.message).toMatch(/: did you mean "sluice_freshness"\? Otherwise choose another name for your rule$/);
    expect(e.message).not.toContain('?;');
    expect(refusal(() => parseRule('sluice_mine', { kind: 'builtin', signal: 'freshness' })).message).toMatch(/\); choose another name for your rule$/);
  });
});
