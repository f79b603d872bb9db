import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { freePort, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { storeFacts } from '../helpers/duckdb.js';
import { tmpDir } from '../helpers/tmp.js';

let server: ServerProcess | null = null;
afterEach(async () => {
  if (server && server.child.exitCode === null) await stop(server);
  server = null;
});

/**
 * The worst poison: an event whose processing kills the whole process (here an enricher that
 * SIGKILLs it). A supervisor restarts sluice each time. Attempts are persisted before
 * processing, so the event ends dead-lettered after N deliveries instead of crash-looping
 * for ever, and every other event is stored.
 */
it('poison.an-event-that-kills-the-process-is-dead-lettered-after-its-attempts-not-crash-looped', async () => {
  const dir = tmpDir();
  const plugin = path.join(dir, 'bomb.mjs');
  fs.writeFileSync(
    plugin,
    `export default { name: 'bomb', enrich(batch) {
       if (batch.some((e) => e.properties.boom)) process.kill(process.pid, 'SIGKILL');
       return batch.map(() => ({ ok: true }));
     } };`,
  );
  const config = path.join(dir, 'sluice.json');
  fs.writeFileSync(config, JSON.stringify({ enrich: { plugins: [{ module: plugin }] }, worker: { maxAttempts: 3 } }));
  const port = await freePort();
  server = await startServer(path.join(dir, 'data'), port, ['--config', config]);
  const keys = { write: /write key:\s+(\S+)/.exec(server.stdout)![1]!, admin: /admin key:\s+(\S+)/.exec(server.stdout)![1]! };
  const ts = new Date().toISOString();
  const events = Array.from({ length: 700 }, (_, i) => ({ type: 'e', key: `k${i % 7}`, idempotency_key: `e-${i}`, ts, properties: i === 377 ? { boom: true } : {} }));
  const started = Date.now();
  for (let i = 0; i < events.length; i += 350) {
    // The process may already be down: the batches before the bomb went in, the rest go in after restarts.
    for (;;) {
      try {
        const r = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${keys.write}` }, body: JSON.stringify(events.slice(i, i + 350)) });
        if (r.status === 202) break;
      } catch {
        // Down: the supervisor below restarts it.
      }
      if (server.child.exitCode !== null || server.child.signalCode !== null) server = await startServer(path.join(dir, 'data'), port, ['--config', config]);
    }
  }
  let restarts = 0;
  let dead: { reason?: string; attempts?: number } = {};
  let backlog = -1;
  for (const end = Date.now() + 120_000; Date.now() < end && !(dead.reason && backlog === 0); await new Promise((r) => setTimeout(r, 200))) {
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      restarts++;
      server = await startServer(path.join(dir, 'data'), port, ['--config', config]);
    }
    try {
      const d = await fetch(`${server.url}/v1/dlq/e-377`, { headers: { authorization: `Bearer ${keys.admin}` } });
      if (d.status === 200) dead = (await d.json()) as typeof dead;
      const st = await fetch(`${server.url}/v1/status`, { headers: { authorization: `Bearer ${keys.admin}` } });
      backlog = ((await st.json()) as { log: { backlog_events: number } }).log.backlog_events;
    } catch {
      // It died under us: restarted on the next turn.
    }
  }
  expect(await stop(server)).toBe(0);
  const facts = await storeFacts(path.join(dir, 'data', 'store.duckdb'), 'default');
  console.log('poison crash figures', { restarts, seconds: (Date.now() - started) / 1000, dead_lettered: dead.reason, attempts: dead.attempts, stored: facts.events, duplicates: facts.events - facts.distinctKeys });
  expect(dead).toMatchObject({ reason: 'poison', attempts: 3 });
  expect(facts).toEqual({ events: 699, distinctKeys: 699, counted: 699 });
  expect(restarts).toBeGreaterThan(0);
  expect(restarts).toBeLessThan(40);
}, 180_000);
