import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { budgetOf } from '../../src/alerts/budget.js';
import { evaluateSlo, thresholdVerdict, type MinutePartial, type SloSeries } from '../../src/alerts/evaluate.js';
import { advance, backtest, minuteEnds } from '../../src/alerts/replay.js';
import { parseRule, ruleJson, type SloRule, type ThresholdRule } from '../../src/alerts/rules.js';
import { fingerprint, initialState, step } from '../../src/alerts/state.js';
import { ManualClock } from '../../src/core/clock.js';

const M = 60_000;
const H = 60 * M;

const sloBody = {
  kind: 'slo',
  objective: 0.99,
  total: { event: 'http_request' },
  bad: { event: 'http_request', filters: [{ field: 'properties.status', op: 'gte', value: 500 }] },
};
const slo = (extra: Record<string, unknown> = {}) => parseRule('checkout-errors', { ...sloBody, ...extra }) as SloRule;

/** `perMinute` events each minute of [from, to), `badShare` of them bad. */
function fill(series: SloSeries, from: number, to: number, perMinute: number, badShare: number): void {
  for (let m = from; m < to; m += M) {
    series.total.set(m, perMinute);
    series.bad.set(m, Math.round(perMinute * badShare));
  }
}

describe('alert rules', () => {
  it('rules.slo-takes-the-sre-workbook-windows-by-default', () => {
    const r = slo();
    expect(r.windows.map((w) => [w.severity, w.long / M, w.short / M, w.factor])).toEqual([
      ['page', 60, 5, 14.4],
      ['page', 360, 30, 6],
      ['ticket', 1440, 120, 3],
      ['ticket', 4320, 360, 1],
    ]);
    expect(r.period).toBe(30 * 24 * H);
    expect(r.minEvents).toBe(100);
    expect(parseRule('checkout-errors', ruleJson(r))).toEqual(r);
  });

  it('rules.slo-refuses-a-factor-its-objective-makes-impossible-with-the-reason', () => {
    // 14.4 × (1 − 0.9) = 1.44 > 1: even all events bad cannot burn that fast.
    expect(() => slo({ objective: 0.9 })).toThrow(/page condition at 14.4× over 1h and 5m can never fire: with objective 0.9 it fires only on a bad ratio above 1.44, .*the default windows .*"windows" overrides them\. Use an objective above 0\.930556 \(e\.g\. 0\.94\)/);
    // Exactly at the limit (a burn rate above 10 needs more than every event bad): refused too.
    expect(() => slo({ objective: 0.9, windows: [{ severity: 'page', long: '1h', short: '5m', factor: 10 }] })).toThrow(/can never fire/);
    expect(() => slo({ objective: 0.9, windows: [{ severity: 'page', long: '1h', short: '5m', factor: 9.9 }] })).not.toThrow();
    expect(() => slo({ windows: [{ severity: 'page', long: '5m', short: '1h', factor: 2 }] })).toThrow(/short window \(1h\) must not be longer/);
    expect(() => slo({ bad: undefined })).toThrow(/exactly one of "bad" and "good"/);
    expect(() => slo({ labels: { severity: 'x' } })).toThrow(/set by sluice/);
  });

  it('rules.threshold-parses-window-condition-for-and-severity', () => {
    const r = parseRule('checkout-silent', { kind: 'threshold', query: { event: 'checkout' }, window: '15m', condition: { op: 'lt', value: 1 }, for: '5m', severity: 'ticket' }) as ThresholdRule;
    expect(r).toMatchObject({ window: 15 * M, for: 5 * M, severity: 'ticket', minEvents: 0, condition: { op: 'lt', value: 1 } });
    expect(r.query.measure.kind).toBe('count');
    expect(() => parseRule('x', { kind: 'threshold', query: { event: 'a', from: '-1h' }, window: '15m', condition: { op: 'lt', value: 1 } })).toThrow(/no "from"/);
    expect(() => parseRule('x', { kind: 'threshold', query: { measures: ['count', 'p95:ms'] }, window: '15m', condition: { op: 'lt', value: 1 } })).toThrow(/exactly one measure/);
    expect(() => parseRule('x', { kind: 'threshold', query: {}, window: '90s', condition: { op: 'lt', value: 1 } })).toThrow(/whole minutes/);
  });
});

describe('alert evaluation', () => {
  const end = Date.UTC(2026, 0, 1, 12);

  it('evaluate.slo-pages-when-both-fast-windows-burn-above-14.4', () => {
    const r = slo();
    const s: SloSeries = { total: new Map(), bad: new Map() };
    // 20 % bad for the last hour against a 1 % budget: burn rate 20 in the 1 h and 5 m windows.
    fill(s, end - 2 * H, end - H, 100, 0);
    fill(s, end - H, end, 100, 0.2);
    const [page, ticket] = evaluateSlo(r, s, end);
    expect(page!.condition).toBe('firing');
    expect(page!.windows[0]).toEqual({ window: '1h', bad: 1200, total: 6000, ratio: 0.2, burn_rate: expect.closeTo(20, 9), threshold: 14.4 });
    expect(page!.windows[1]).toMatchObject({ window: '5m', bad: 100, total: 500 });
    // The 1 d window saw 1,200 bad of 12,000 (2 h of data): 10 %, burn 10 > 3, and 2 h 10 %: the ticket fires too.
    expect(ticket!.condition).toBe('firing');
  });

  it('evaluate.slo-does-not-page-when-only-the-long-window-burns', () => {
    const r = slo();
    const s: SloSeries = { total: new Map(), bad: new Map() };
    fill(s, end - 6 * H, end, 100, 0);
    fill(s, end - H, end - 10 * M, 100, 0.3);
    const [page] = evaluateSlo(r, s, end);
    // The 1 h window burns at 25 but the 5 m window is clean: the incident is over, no page
    // (and the 6 h window burns at 4.2, under 6).
    expect(page!.windows[0]!.burn_rate!).toBeGreaterThan(14.4);
    expect(page!.windows[1]!.burn_rate).toBe(0);
    expect(page!.condition).toBe('ok');
  });

  it('evaluate.slo-low-traffic-is-insufficient-data-not-a-page', () => {
    const r = slo();
    const s: SloSeries = { total: new Map([[end - 2 * M, 3]]), bad: new Map([[end - 2 * M, 1]]) };
    const [page, ticket] = evaluateSlo(r, s, end);
    expect(page!.condition).toBe('insufficient');
    expect(ticket!.condition).toBe('insufficient');
    expect(evaluateSlo(slo({ min_events: 0 }), s, end)[0]!.condition).toBe('firing');
  });

  it('evaluate.threshold-compares-the-measure-and-respects-min-events', () => {
    const r = parseRule('silent', { kind: 'threshold', query: { event: 'checkout' }, window: '15m', condition: { op: 'lt', value: 1 } }) as ThresholdRule;
    expect(thresholdVerdict(r, { value: 0, events: 0 }).condition).toBe('firing');
    expect(thresholdVerdict(r, { value: 3, events: 3 }).condition).toBe('ok');
    const p95 = parseRule('slow', { kind: 'threshold', query: { event: 'req', measures: ['p95:ms'] }, window: '5m', condition: { op: 'gt', value: 800 }, min_events: 20 }) as ThresholdRule;
    expect(thresholdVerdict(p95, { value: 900, events: 10 }).condition).toBe('insufficient');
    expect(thresholdVerdict(p95, { value: 900, events: 30 }).condition).toBe('firing');
    expect(thresholdVerdict(p95, { value: null, events: 30 }).condition).toBe('insufficient');
  });
});

describe('alert state machine', () => {
  it('state.for-holds-pending-then-fires-then-resolves-when-the-window-clears', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const r = parseRule('silent', { kind: 'threshold', query: { event: 'checkout' }, window: '15m', condition: { op: 'lt', value: 1 }, for: '5m' }) as ThresholdRule;
    let s = initialState('acme', r, 'page', clock.now());
    const seen: string[] = [];
    const tick = async (events: number) => {
      await clock.advance(M);
      const out = step(s, thresholdVerdict(r, { value: events, events }), clock.now(), r.for);
      s = out.next;
      seen.push(s.state);
    };
    await tick(5);
    for (let i = 0; i < 6; i++) await tick(0);
    await tick(2);
    await tick(2);
    expect(seen).toEqual(['inactive', 'pending', 'pending', 'pending', 'pending', 'pending', 'firing', 'resolved', 'resolved']);
    expect(s.labels).toEqual({ alertname: 'silent', tenant: 'acme', severity: 'page' });
    expect(s.fingerprint).toBe(fingerprint({ severity: 'page', tenant: 'acme', alertname: 'silent' }));
    expect(s.fingerprint).toMatch(/^[0-9a-f]{16}$/);
  });

  it('state.pending-that-clears-goes-back-to-inactive-and-restarts-its-for', () => {
    const r = parseRule('t', { kind: 'threshold', query: {}, window: '5m', condition: { op: 'gt', value: 10 }, for: '2m' }) as ThresholdRule;
    let s = initialState('acme', r, 'page', 0);
    const run = (values: number[]) => values.map((v) => (s = step(s, thresholdVerdict(r, { value: v, events: v }), s.evaluatedAt + M, r.for).next).state);
    expect(run([20, 20, 5, 20, 20, 20])).toEqual(['pending', 'pending', 'inactive', 'pending', 'pending', 'firing']);
  });

  it('state.insufficient-data-is-its-own-state-with-a-transition', () => {
    const r = slo();
    let s = initialState('acme', r, 'page', 0);
    const out = step(s, { severity: 'page', condition: 'insufficient', windows: [] }, M, 0);
    expect(out.next.state).toBe('insufficient_data');
    expect(out.transition).toMatchObject({ from: 'inactive', to: 'insufficient_data', at: M });
    s = out.next;
    expect(step(s, { severity: 'page', condition: 'insufficient', windows: [] }, 2 * M, 0).transition).toBeNull();
  });
});

describe('backtest', () => {
  it('backtest.equals-replaying-the-evaluation-minute-by-minute (property)', () => {
    const windows = [
      { severity: 'page', long: '10m', short: '2m', factor: 5 },
      { severity: 'ticket', long: '30m', short: '5m', factor: 2 },
    ];
    const start = Date.UTC(2026, 0, 1);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(20), fc.nat(20)), { minLength: 60, maxLength: 150 }),
        fc.integer({ min: 0, max: 15 }),
        // Above 0.8: the page factor of 5 is at the limit of 0.8 (1 / (1 − 0.8)), which is refused.
        fc.double({ min: 0.81, max: 0.99, noNaN: true }),
        (minutes, minEvents, objective) => {
          const r = parseRule('p', { ...sloBody, objective, windows, min_events: minEvents }) as SloRule;
          const s: SloSeries = { total: new Map(), bad: new Map() };
          minutes.forEach(([total, bad], i) => {
            s.total.set(start + i * M, total);
            s.bad.set(start + i * M, Math.min(bad, total));
          });
          const to = start + minutes.length * M;
          const from = start + 30 * M;
          const bt = backtest('acme', r, { slo: s }, from, to);
          // The live path, one evaluation per minute as the watermark passes each.
          let states = null;
          const live = [];
          for (const end of minuteEnds(from, to)) {
            const out = advance('acme', r, states, { slo: s }, [end]);
            states = out.states;
            live.push(...out.transitions);
          }
          expect(bt.transitions).toEqual(live);
          expect([...bt.states.values()]).toEqual([...states!.values()]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('backtest.threshold-count-equals-the-live-path (property)', () => {
    const start = Date.UTC(2026, 0, 1);
    fc.assert(
      fc.property(fc.array(fc.nat(5), { minLength: 40, maxLength: 120 }), fc.integer({ min: 0, max: 4 }), (counts, forMinutes) => {
        const r = parseRule('q', { kind: 'threshold', query: { event: 'checkout' }, window: '15m', condition: { op: 'lt', value: 3 }, for: `${forMinutes}m` }) as ThresholdRule;
        const partials = new Map<number, MinutePartial>(counts.map((c, i) => [start + i * M, { count: c, sum: 0, min: null, max: null }]));
        const to = start + counts.length * M;
        const bt = backtest('acme', r, { partials }, start + 15 * M, to);
        let states = null;
        const live = [];
        for (const end of minuteEnds(start + 15 * M, to)) {
          const out = advance('acme', r, states, { partials }, [end]);
          states = out.states;
          live.push(...out.transitions);
        }
        expect(bt.transitions).toEqual(live);
      }),
      { numRuns: 200 },
    );
  });
});

describe('error budget', () => {
  it('budget.remaining-is-one-minus-bad-over-allowed', () => {
    const r = slo({ period: '1d' });
    const end = Date.UTC(2026, 0, 2);
    const s: SloSeries = { total: new Map(), bad: new Map() };
    fill(s, end - 24 * H, end, 10, 0);
    fill(s, end - H, end, 10, 0.5);
    const b = budgetOf(r, s.total, s.bad, end, H);
    // 14,400 events, 1 % allowed = 144 bad; 300 bad spent: remaining 1 − 300/144.
    expect(b.total).toBe(14_400);
    expect(b.bad).toBe(300);
    expect(b.allowed).toBeCloseTo(144, 9);
    expect(b.remaining).toBeCloseTo(1 - 300 / 144, 9);
    expect(b.buckets).toHaveLength(24);
    expect(b.buckets[23]!.burn_rate).toBeCloseTo(50, 9);
    expect(b.buckets[0]!.burn_rate).toBe(0);
  });
});
