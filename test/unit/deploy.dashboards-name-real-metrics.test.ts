import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { ingestMetrics, prom, storeMetrics } from '../../src/obs/metrics.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The Grafana dashboard and the Prometheus alert rules in deploy/ name sluice's metrics by
 * hand: a metric renamed or dropped would leave a panel empty or an alert that never fires,
 * silently. Every `sluice_…` name they use must be one the two threads' registries export
 * (a histogram's `_bucket`, `_sum` and `_count` series included).
 */
it('deploy.every-metric-the-dashboard-and-the-alert-rules-name-is-one-sluice-exports', async () => {
  const registry = new prom.Registry();
  ingestMetrics(registry);
  storeMetrics(registry);
  const exported = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    exported.add(m.name);
    if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(m.name + suffix);
    if (String(m.type) === 'summary') for (const suffix of ['_sum', '_count']) exported.add(m.name + suffix);
  }
  const named = new Set<string>();
  for (const file of ['deploy/grafana/sluice.json', 'deploy/prometheus/alerts.yml']) {
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/\bsluice_[a-z0-9_]+/g)) named.add(m[0]);
  }
  expect(named.size).toBeGreaterThan(10);
  expect([...named].filter((n) => !exported.has(n))).toEqual([]);
});
