import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { percentile } from './load.js';
import { freePort, keysFrom, startSluice, type Child } from './proc.js';

/**
 * Time from watermark to webhook, on a real `sluice up` and a local HTTP receiver: per run, a
 * new `sluice up` whose default tenant has a receiver (Alertmanager webhook), routing
 * (`group_wait: 0s`) and an SLO (99 %, the default burn-rate windows), then 300 requests,
 * 30 % failed, with event times in the current minute. They become complete when the query
 * watermark passes the end of that minute (a window ends at a whole minute: the alert cannot
 * fire before); the figure is the time from then, as seen by polling `POST /v1/query` every
 * 20 ms, to the receiver getting the Alertmanager v4 payload.
 *
 * The evaluation timer starts with the process, and minute ends come every 60 s: with an
 * interval that divides a minute, one process would see the same phase at every run. Each
 * run therefore starts its process at its own phase, run i at i/runs of an interval after a
 * multiple of it, so the runs sample the wait for the next pass evenly. By construction the
 * figure is at most one `alerts.evaluateIntervalMs`, plus a pass, plus one
 * `alerts.deliverIntervalMs` (1 s); the ratio printed is median / interval.
 */
export interface LatencyFigure {
  intervalMs: number;
  runsMs: number[];
  medianMs: number;
}

const MIN = 60_000;

export async function webhookLatency(opts: { runs: number; intervalMs: number; log?: (line: string) => void }): Promise<LatencyFigure> {
  const log = opts.log ?? console.log;
  const arrived = new Map<string, number>();
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const at = Date.now();
      try {
        const p = JSON.parse(body) as { version?: string; status?: string; commonLabels?: { tenant?: string } };
        const tenant = p.commonLabels?.tenant;
        if (p.version === '4' && p.status === 'firing' && tenant && !arrived.has(tenant)) arrived.set(tenant, at);
      } catch {
        // Not a payload of ours.
      }
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/alertmanager`;
  const runsMs: number[] = [];
  try {
    for (let run = 0; run < opts.runs; run++) {
      const phase = Math.floor((run * opts.intervalMs) / opts.runs);
      await new Promise((r) => setTimeout(r, (phase - (Date.now() % opts.intervalMs) + opts.intervalMs) % opts.intervalMs));
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-alert-latency-'));
      const sluice = await startSluice(dir, await freePort(), { SLUICE_ALERTS_EVALUATE_INTERVAL_MS: String(opts.intervalMs) });
      try {
        runsMs.push(await oneRun(sluice, hook, arrived, opts.intervalMs, run, log));
      } finally {
        await sluice.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    receiver.close();
  }
  return { intervalMs: opts.intervalMs, runsMs, medianMs: percentile(runsMs, 0.5) };
}

async function oneRun(sluice: Child, hook: string, arrived: Map<string, number>, intervalMs: number, run: number, log: (line: string) => void): Promise<number> {
  const call = async (key: string, method: string, url: string, body?: unknown): Promise<any> => {
    const r = await fetch(`${sluice.url}${url}`, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? null : JSON.stringify(body) });
    if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${await r.text()}`);
    return r.status === 204 ? null : r.json();
  };
  const k = keysFrom(sluice.stdout);
  const keys = { write_key: k.writeKey, read_key: k.readKey, admin_key: k.adminKey };
  const tenant = 'default';
  arrived.delete(tenant);
  await call(keys.admin_key, 'PUT', '/v1/alerts/receivers/oncall', { type: 'webhook', url: hook });
  await call(keys.admin_key, 'PUT', '/v1/alerts/routing', { group_by: ['alertname'], group_wait: '0s', default_receiver: 'oncall' });
  await call(keys.admin_key, 'PUT', '/v1/alerts/rules/checkout-errors', {
    kind: 'slo',
    objective: 0.99,
    total: { event: 'http_request' },
    bad: { event: 'http_request', filters: [{ field: 'properties.status', op: 'gte', value: 500 }] },
  });
  // Leave at least 10 s of the minute for the events to be sent and stored before it ends.
  if (Date.now() % MIN > MIN - 10_000) await new Promise((r) => setTimeout(r, MIN - (Date.now() % MIN) + 100));
  const minute = Math.floor(Date.now() / MIN) * MIN;
  const end = minute + MIN;
  const events = Array.from({ length: 300 }, (_, i) => ({
    type: 'http_request',
    key: `u-${i}`,
    ts: new Date(Math.min(Date.now(), minute + i * 10)).toISOString(),
    idempotency_key: `${tenant}-${i}`,
    properties: { status: i % 10 < 3 ? 503 : 200 },
  }));
  await call(keys.write_key, 'POST', '/v1/events', events);
  // Complete: the watermark is past the minute's end and every event is visible.
  let complete = 0;
  while (complete === 0) {
    const q = await call(keys.read_key, 'POST', '/v1/query', { event: 'http_request', from: new Date(minute).toISOString(), to: new Date(end).toISOString(), interval: null });
    if (Date.parse(q.watermark as string) >= end && q.rows[0]?.[0] === events.length) complete = Date.now();
    else await new Promise((r) => setTimeout(r, 20));
  }
  const deadline = complete + intervalMs + 30_000;
  while (!arrived.has(tenant)) {
    if (Date.now() > deadline) throw new Error(`no webhook for ${tenant} within the evaluation interval + 30 s: ${sluice.stderr.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const ms = arrived.get(tenant)! - complete;
  log(`  run ${run + 1}: complete at ${new Date(complete).toISOString()}, webhook ${(ms / 1000).toFixed(2)} s later`);
  return ms;
}
