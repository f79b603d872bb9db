import os from 'node:os';
import { afterEach, expect, it } from 'vitest';
import { until } from '../helpers/pipeline.js';
import { freePort, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

let server: ServerProcess | null = null;
afterEach(async () => {
  if (server) await stop(server);
  server = null;
});

/** This machine's first non-loopback IPv4 address: a peer there is not loopback. */
function outsideAddress(): string | null {
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return null;
}

it('obs.metrics-answer-loopback-clients-on-the-api-address-and-anyone-on-obs.metricsAddress', async () => {
  const port = await freePort();
  const obsPort = await freePort();
  server = await startServer(tmpDir(), port, ['--host', '0.0.0.0'], { SLUICE_OBS_METRICS_ADDRESS: `127.0.0.1:${obsPort}` });
  expect(server.stdout).toContain(`Metrics: http://127.0.0.1:${obsPort}/metrics`);

  const obs = `http://127.0.0.1:${obsPort}`;
  await until(async () => (await fetch(`${obs}/readyz`)).status === 200, 20_000); // once the store thread has started
  const metrics = await fetch(`${obs}/metrics`);
  expect(metrics.status).toBe(200);
  const text = await metrics.text();
  expect(text).toContain('sluice_store_queries_waiting 0'); // waiting in line, apart from running
  expect(text).toMatch(/sluice_store_readers_busy \d/);
  expect(text).toMatch(/sluice_store_view_pending_rows \d/);
  expect(text).toMatch(/^sluice_log_ledger_keys \d+$/m);
  expect(text).toMatch(/^sluice_log_ledger_filter_bytes \d+$/m);
  // The store's memory by what it holds, adding up to its total (both from one reading).
  const byTag = [...text.matchAll(/^sluice_store_memory_by_tag_bytes\{tag="([a-z_]+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])] as const);
  expect(byTag.map(([tag]) => tag)).toEqual(expect.arrayContaining(['base_table', 'in_memory_table', 'art_index']));
  const total = Number(/^sluice_store_memory_bytes (\d+)$/m.exec(text)?.[1]);
  expect(byTag.reduce((sum, [, bytes]) => sum + bytes, 0)).toBe(total);
  expect((await fetch(`${obs}/healthz`)).status).toBe(200);
  expect((await fetch(`${obs}/v1/status`)).status).toBe(404); // nothing else there

  expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200); // loopback on the API address
  const outside = outsideAddress();
  if (outside === null) return console.warn('no non-loopback address on this machine: the refusal is not checked');
  const refused = await fetch(`http://${outside}:${port}/metrics`);
  expect(refused.status).toBe(403);
  const body = (await refused.json()) as { field: string; message: string };
  expect(body.field).toBe('obs.metricsAddress');
  expect(body.message).toMatch(/loopback clients only: scrape obs.metricsAddress/);
  expect((await fetch(`http://${outside}:${port}/healthz`)).status).toBe(200); // probes still answer
});
