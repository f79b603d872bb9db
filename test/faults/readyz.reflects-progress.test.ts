import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { ManualClock } from '../../src/core/clock.js';
import type { LogRecord } from '../../src/core/types.js';
import { READY_CHECK_MS } from '../../src/http/app.js';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';
import { mountTmpfs, tmpfsOrSkip } from '../helpers/tmpfs.js';

/**
 * /readyz answers ready only while the pipeline makes progress: the log can append, the store
 * can commit, and the oldest unprocessed event is within obs.readyFreshnessSeconds. When it
 * is not, it answers 503 and names the part in `failing`.
 */
const mountable = tmpfsOrSkip('the readiness fault tests');

let p: Pipeline | null = null;
const unmounts: (() => void)[] = [];
afterEach(async () => {
  await p?.close();
  p = null;
  for (const u of unmounts.splice(0)) u();
});

async function readyz(pipeline: Pipeline) {
  const res = await pipeline.app.inject({ method: 'GET', url: '/readyz' });
  return { status: res.statusCode, body: res.json() as { status: string; failing: string[]; checks: Record<string, { ok: boolean; detail?: string }> } };
}

describe('readiness reflects progress', () => {
  it('readyz.freshness-past-its-bound-is-not-ready-and-named', async () => {
    const clock = new ManualClock(Date.now());
    p = await startPipeline({ obs: { readyFreshnessSeconds: 300 } }, { workers: false, clock });
    expect(await readyz(p)).toMatchObject({ status: 200, body: { status: 'ready', failing: [] } });
    const ts = new Date().toISOString();
    await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: [{ type: 'a', idempotency_key: 'x', ts }] });
    await clock.advance(200_000);
    expect((await readyz(p)).status).toBe(200);
    await clock.advance(301_000); // nothing processed it for 8 minutes
    const stuck = await readyz(p);
    expect(stuck.status).toBe(503);
    expect(stuck.body).toMatchObject({ status: 'degraded', failing: ['freshness'], checks: { log: { ok: true }, store: { ok: true }, freshness: { ok: false, bound_seconds: 300 } } });
    expect(stuck.body.checks.freshness.detail).toMatch(/oldest unprocessed event is 50\d s old, over the 300 s bound/);
  });

  it('readyz.a-part-that-does-not-answer-is-named-within-the-check-time-instead-of-hanging', async () => {
    const clock = new ManualClock(Date.now());
    p = await startPipeline({}, { workers: false, clock });
    // A store thread busy for minutes (a fault injected into its health call, which never answers).
    p.store.health = () => new Promise(() => undefined);
    const pending = readyz(p);
    // The other parts answer with real I/O (a file's size): let it finish before the check time passes.
    await new Promise((r) => setTimeout(r, 300));
    await clock.advance(READY_CHECK_MS);
    const r = await pending;
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ failing: ['store'], checks: { log: { ok: true }, catalog: { ok: true }, store: { ok: false, detail: `the store did not answer within ${READY_CHECK_MS} ms (busy or stuck)` } } });
  });

  it.skipIf(!mountable)('readyz.a-full-disk-is-not-ready-naming-the-log-and-ready-again-when-space-returns-without-an-append', async () => {
    const disk = mountTmpfs(12);
    unmounts.push(disk.unmount);
    p = await startPipeline({ dataDir: disk.dir }, { workers: false });
    let refused = 0;
    for (let i = 0; refused === 0 && i < 2_000; i++) {
      const events = Array.from({ length: 200 }, (_, j) => ({ type: 'a', idempotency_key: `e-${i}-${j}`, properties: { pad: randomBytes(200).toString('hex') } }));
      const r = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: events });
      if (r.statusCode === 503) refused++;
    }
    expect(refused).toBe(1);
    const full = await readyz(p);
    expect(full.status).toBe(503);
    expect(full.body.failing).toContain('log');
    expect(full.body.checks.log.detail).toMatch(/appends fail since .*out of disk space/);

    disk.resize(64);
    // Ready again as soon as the log can write, before any append: a balancer that routes on
    // /readyz sends none while it says not ready.
    expect((await readyz(p)).body.checks.log).toMatchObject({ ok: true });
    const r = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: [{ type: 'a', idempotency_key: 'after' }] });
    expect(r.statusCode).toBe(202);
    expect((await readyz(p)).body.checks.log).toMatchObject({ ok: true });
  });

  it.skipIf(!mountable)('readyz.store-commits-failing-make-the-store-check-fail-with-the-cause', async () => {
    const disk = mountTmpfs(8);
    unmounts.push(disk.unmount);
    const store = new DuckdbStore({ file: path.join(disk.dir, 'store.duckdb'), queryTimeoutMs: 10_000, memoryMb: 64 });
    await store.connect();
    try {
      expect(await store.health()).toMatchObject({ ok: true });
      let failed: unknown = null;
      let offset = 0;
      for (let i = 0; failed === null && i < 500; i++) {
        const records: LogRecord[] = Array.from({ length: 2_000 }, () => {
          offset++;
          return { tenant: 'acme', type: 'a', key: `k${offset}`, idempotencyKey: `i${offset}`, ts: Date.now(), receivedAt: Date.now(), partition: 0, origin: 'live', properties: JSON.stringify({ pad: randomBytes(100).toString('hex') }), context: '{}', offset, attempt: 1 };
        });
        await store.commit({ records, partitions: [{ partition: 0, token: 1, upTo: offset }] }).catch((e: unknown) => (failed = e));
      }
      expect(failed).not.toBeNull();
      const h = await store.health();
      expect(h.ok).toBe(false);
      expect(h.detail).toMatch(/^commits fail since .*: store commit failed/);
    } finally {
      await store.close();
    }
  });
});
