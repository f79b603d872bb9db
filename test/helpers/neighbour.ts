import type { Pipeline } from './pipeline.js';

/** The q-quantile (0..1) of `xs`, nearest rank. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export interface SteadyResult {
  /** Milliseconds per ingest request of tenant B. */
  ingestMs: number[];
  /** HTTP statuses B's requests got, counted. */
  statuses: Map<number, number>;
}

/**
 * Tenant B's steady traffic: `batches` requests of `size` events each, one after another,
 * timed one by one. Keys are `${prefix}-${batch}-${i}` so that a run's events can be counted.
 */
export async function steadyIngest(p: Pipeline, writeKey: string, prefix: string, batches = 40, size = 20): Promise<SteadyResult> {
  const ingestMs: number[] = [];
  const statuses = new Map<number, number>();
  const ts = new Date().toISOString();
  for (let b = 0; b < batches; b++) {
    const events = Array.from({ length: size }, (_, i) => ({ type: 'page', idempotency_key: `${prefix}-${b}-${i}`, ts, properties: { path: `/p/${i}` } }));
    const t0 = performance.now();
    const res = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${writeKey}` }, payload: events });
    ingestMs.push(performance.now() - t0);
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
  }
  return { ingestMs, statuses };
}

/**
 * Tenant B's freshness in one run: for each of its events whose idempotency key starts with
 * `prefix`, the time from receipt to stored (ms). Waits until `expected` of them are stored.
 */
export async function freshnessMs(p: Pipeline, tenant: string, prefix: string, expected: number, timeoutMs = 60_000): Promise<number[]> {
  for (const end = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 50))) {
    const ms: number[] = [];
    let before: { ts: number; partition: number; offset: number } | undefined;
    for (;;) {
      const page = await p.store.searchEvents({ tenant, type: 'page', from: 0, to: Date.now() + 86_400_000, limit: 1_000, ...(before ? { before } : {}) });
      for (const e of page) if (e.idempotencyKey.startsWith(`${prefix}-`)) ms.push(e.storedAt - e.receivedAt);
      if (page.length < 1_000) break;
      const last = page[page.length - 1]!;
      before = { ts: last.ts, partition: last.partition, offset: last.offset };
    }
    if (ms.length >= expected) return ms;
    if (Date.now() > end) throw new Error(`${tenant}: ${ms.length} of ${expected} events of run ${prefix} stored after ${timeoutMs} ms`);
  }
}
