import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';
import { evaluatePass } from '../../src/alerts/evaluator.js';
import { storeSource } from '../../src/alerts/source.js';
import { directReader } from '../../src/app/store-calls.js';
import { ManualClock } from '../../src/core/clock.js';
import { INGEST_FLUSH_MS, IngestOutcomes } from '../../src/obs/ingest-outcomes.js';

/**
 * The built-in rule sluice_ingest_availability, through the HTTP face: requests refused as
 * saturated (503) are counted per tenant and minute of receipt, written to the catalog, and
 * page once they burn the 99.9 % budget over both windows of a page condition.
 */

const M = 60_000;
const T0 = Math.floor(Date.now() / M) * M - 30 * M;

describe('alerts: ingest availability', () => {
  let p: Pipeline;
  const clock = new ManualClock(T0);

  beforeAll(async () => {
    p = await startPipeline({}, { clock, workers: false });
  });
  afterAll(async () => {
    await p?.close();
  });

  const send = (key: string) =>
    p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: [{ type: 'ping', key: 'k' }] });

  const pass = () =>
    evaluatePass({
      store: p.catalog.alerts,
      source: storeSource(directReader(p.store, { log: p.log, catalog: p.catalog, conservationWindowMs: 3_600_000 }), p.log, () => clock.now(), { ingest: (t, from, to) => p.catalog.alerts.ingestMinutes(t, from, to) }),
      clock,
      tenants: async () => [p.tenant.tenant],
      onRuleError: (_t, rule, e) => errors.push(`${rule}: ${e.message}`),
    });
  const errors: string[] = [];

  it('ingest-availability.counts-5xx-per-minute-and-pages-when-saturation-burns-the-budget', async () => {
    // Ten healthy minutes (20 requests each), then six saturated ones: 5 of 20 refused with 503.
    for (let m = 0; m < 16; m++) {
      p.quotas.setLogBacklog(0);
      for (let i = 0; i < 15; i++) expect((await send(p.tenant.writeKey)).statusCode).toBe(202);
      if (m >= 10) p.quotas.setLogBacklog(Number.MAX_SAFE_INTEGER);
      for (let i = 0; i < 5; i++) expect((await send(p.tenant.writeKey)).statusCode).toBe(m >= 10 ? 503 : 202);
      // A request with no valid key belongs to no tenant: not counted.
      expect((await send('sk_write_nope')).statusCode).toBe(401);
      await clock.advance(M);
    }
    p.quotas.setLogBacklog(0);
    await clock.advance(INGEST_FLUSH_MS * 4);
    await until(async () => (await p.catalog.alerts.ingestMinutes(p.tenant.tenant, T0, T0 + 16 * M)).length === 16);
    const minutes = await p.catalog.alerts.ingestMinutes(p.tenant.tenant, T0, T0 + 16 * M);
    expect(minutes.map((x) => [x.requests, x.failed])).toEqual(Array.from({ length: 16 }, (_, m) => [20, m >= 10 ? 5 : 0]));

    const r = await pass();
    expect(errors).toEqual([]);
    const fired = r.transitions.filter((t) => t.rule === 'sluice_ingest_availability');
    expect(fired.map((t) => `${t.from}->${t.to}`)).toEqual(['inactive->firing']);
    const state = (await p.catalog.alerts.states(p.tenant.tenant)).find((s) => s.rule === 'sluice_ingest_availability')!.body as { state: string; severity: string; verdict: { windows: unknown[] } };
    expect(state).toMatchObject({ state: 'firing', severity: 'page' });
    // The explanation: 1 h holds the 16 minutes (30 of 320 failed), 5 m the last five (25 of 100).
    expect(state.verdict.windows[0]).toEqual({ window: '1h', bad: 30, total: 320, ratio: 30 / 320, burn_rate: expect.closeTo(93.75, 6), threshold: 14.4 });
    expect(state.verdict.windows[1]).toEqual({ window: '5m', bad: 25, total: 100, ratio: 0.25, burn_rate: expect.closeTo(250, 6), threshold: 14.4 });
  });

  it('ingest-availability.has-an-error-budget-like-an-slo-and-threshold-built-ins-have-none', async () => {
    const get = (name: string, bucket = '1h') => p.app.inject({ method: 'GET', url: `/v1/alerts/rules/${name}/budget?bucket=${bucket}`, headers: { authorization: `Bearer ${p.tenant.readKey}` } });
    const res = await get('sluice_ingest_availability');
    expect(res.statusCode).toBe(200);
    const b = res.json();
    // The 16 minutes of the test above: 320 requests, 30 failed; 99.9 % allows 0.32 bad.
    expect(b).toMatchObject({ rule: 'sluice_ingest_availability', objective: 0.999, total: 320, bad: 30, allowed_bad: expect.closeTo(0.32, 6), remaining: expect.closeTo(1 - 30 / 0.32, 6) });
    const counted = b.buckets.filter((x: { total: number }) => x.total > 0);
    expect(counted.reduce((n: number, x: { total: number }) => n + x.total, 0)).toBe(320);
    expect(counted.reduce((n: number, x: { bad: number }) => n + x.bad, 0)).toBe(30);
    expect(Date.parse(b.period.to) - Date.parse(b.period.from)).toBe(30 * 24 * 60 * M);
    for (const name of ['sluice_freshness', 'sluice_dead_letter_ratio']) {
      const refused = await get(name);
      expect(refused.statusCode).toBe(404);
      expect(refused.json().message).toContain('sluice_ingest_availability');
    }
  });

  it('ingest-availability.is-changed-and-turned-off-like-the-other-built-ins', async () => {
    const put = (body: unknown) =>
      p.app.inject({ method: 'PUT', url: '/v1/alerts/rules/sluice_ingest_availability', headers: { authorization: `Bearer ${p.tenant.adminKey}`, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
    const bad = await put({ kind: 'builtin', signal: 'ingest_availability', objective: 0.99, windows: [{ severity: 'page', long: '1h', short: '5m', factor: 120 }] });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toContain('can never fire');
    expect((await put({ kind: 'builtin', signal: 'ingest_availability', objective: 0.95 })).statusCode).toBeLessThan(300);
    // At 95 % the 25 % of the last five minutes burn 5×: below 14.4 and 6, it resolves.
    for (let i = 0; i < 20; i++) expect((await send(p.tenant.writeKey)).statusCode).toBe(202);
    await clock.advance(M);
    await until(async () => (await p.catalog.alerts.ingestMinutes(p.tenant.tenant, T0, T0 + 17 * M)).length === 17);
    let r = await pass();
    expect(r.transitions.filter((t) => t.rule === 'sluice_ingest_availability').map((t) => t.to)).toEqual(['resolved']);
    expect((await put({ kind: 'builtin', signal: 'ingest_availability', enabled: false })).statusCode).toBeLessThan(300);
    await clock.advance(M);
    r = await pass();
    expect(r.transitions.filter((t) => t.rule === 'sluice_ingest_availability')).toEqual([]);
  });

  it('ingest-outcomes.keep-what-a-failed-flush-could-not-write', async () => {
    const o = new IngestOutcomes();
    o.observe('a', T0 + 1_000, 202);
    o.observe('a', T0 + 2_000, 503);
    await expect(o.flush(async () => Promise.reject(new Error('catalog down')))).rejects.toThrow('catalog down');
    o.observe('a', T0 + 3_000, 500);
    const written: unknown[] = [];
    await o.flush(async (rows) => void written.push(...rows));
    expect(written).toEqual([{ tenant: 'a', minute: T0, requests: 3, failed: 2 }]);
  });
});
