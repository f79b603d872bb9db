import { describe, expect, it } from 'vitest';
import { frame } from '../../src/cli/top.js';
import { balance } from '../../src/obs/conservation.js';
import { TenantLabels } from '../../src/obs/metrics.js';
import { parsePrometheusText, quantileBetween, sumBy, total } from '../../src/obs/prom-text.js';
import { linksOf } from '../../src/obs/tracing.js';

const scrape = (received: number, buckets: [string, number][]) =>
  parsePrometheusText(
    [
      '# HELP sluice_events_received_total Events received',
      '# TYPE sluice_events_received_total counter',
      `sluice_events_received_total{tenant="acme"} ${received}`,
      `sluice_events_received_total{tenant="b\\"q"} 1`,
      `sluice_events_accepted_total{tenant="acme"} ${received}`,
      ...buckets.map(([le, n]) => `sluice_http_request_duration_seconds_bucket{method="POST",route="/v1/events",status_code="202",le="${le}"} ${n}`),
      `sluice_http_request_duration_seconds_count{method="POST",route="/v1/events",status_code="202"} ${buckets.at(-1)![1]}`,
      'sluice_freshness_seconds 2.5',
      '',
    ].join('\n'),
  );

describe('observability helpers', () => {
  it('prom-text.parses-samples-labels-and-escapes', () => {
    const s = scrape(10, [['0.1', 1], ['+Inf', 2]]);
    expect(s.find((x) => x.labels.tenant === 'b"q')?.value).toBe(1);
    expect(total(s, 'sluice_events_received_total')).toBe(11);
    expect(sumBy(s, 'sluice_events_received_total', 'tenant').get('acme')).toBe(10);
    expect(s.find((x) => x.labels.le === '+Inf')?.value).toBe(2);
  });

  it('prom-text.quantile-from-bucket-increases-like-histogram_quantile', () => {
    const before = scrape(0, [['0.01', 0], ['0.1', 0], ['1', 0], ['+Inf', 0]]);
    const after = scrape(100, [['0.01', 50], ['0.1', 90], ['1', 100], ['+Inf', 100]]);
    expect(quantileBetween(before, after, 'sluice_http_request_duration_seconds', 0.5)).toBeCloseTo(0.01);
    expect(quantileBetween(before, after, 'sluice_http_request_duration_seconds', 0.95)).toBeCloseTo(0.55);
    expect(quantileBetween(after, after, 'sluice_http_request_duration_seconds', 0.5)).toBeNaN();
  });

  it('top.frame-shows-rates-between-two-scrapes', () => {
    const text = frame('http://x', scrape(100, [['+Inf', 0]]), scrape(300, [['+Inf', 4]]), 2, new Date(0));
    expect(text).toContain('received 100');
    expect(text).toContain('2.0 req/s');
    expect(text).toContain('2.5 s behind');
    expect(text).toMatch(/acme\s+100/);
  });

  it('tenant-labels.admit-the-first-n-then-other', () => {
    const admitted: string[] = [];
    const l = new TenantLabels(2, (t) => admitted.push(t));
    expect([l.of('a'), l.of('b'), l.of('c'), l.of('a')]).toEqual(['a', 'b', 'sluice_other', 'a']);
    expect(l.peek('c')).toBe('sluice_other');
    expect(admitted).toEqual(['a', 'b']);
  });

  it('conservation.balance-per-tenant-and-minute', () => {
    const tallies = [
      { tenant: 't', minute: 0, received: 10, rejected: 1, duplicate: 2 },
      { tenant: 't', minute: 60_000, received: 5, rejected: 0, duplicate: 0 },
    ];
    const b = balance(tallies, [{ tenant: 't', minute: 0, n: 6 }, { tenant: 't', minute: 60_000, n: 6 }], [{ tenant: 't', minute: 0, n: 1 }]);
    expect(b.map((m) => m.gap)).toEqual([0, -1]);
  });

  it('tracing.links-one-per-distinct-valid-traceparent', () => {
    const tp = (n: number) => `00-${String(n).padStart(32, '0')}-${String(n).padStart(16, '0')}-01`;
    const links = linksOf([{ trace: tp(1) }, { trace: tp(1) }, {}, { trace: 'garbage' }, { trace: tp(2) }]);
    expect(links.map((l) => l.context.spanId)).toEqual([String(1).padStart(16, '0'), String(2).padStart(16, '0')]);
    expect(links[0]!.context.isRemote).toBe(true);
  });
});
