import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MinuteSeries } from '../../src/alerts/evaluate.js';
import { SluiceError } from '../../src/core/errors.js';

/** The SluiceError `f` throws (or fails). */
export function refusal(f: () => unknown): SluiceError {
  try {
    f();
  } catch (e: unknown) {
    if (e instanceof SluiceError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

/**
 * A webhook receiver on a free loopback port: answers `status()` (200 by default), keeps the
 * JSON bodies it answered 200 and counts the others. Its server goes into `servers`, for the
 * test to close.
 */
export async function webhookReceiver<B = unknown>(servers: http.Server[], status: () => number = () => 200): Promise<{ url: string; bodies: B[]; refused: number }> {
  const bodies: B[] = [];
  const hook = { url: '', bodies, refused: 0 };
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      const code = status();
      if (code === 200) bodies.push(JSON.parse(data) as B);
      else hook.refused++;
      res.writeHead(code).end();
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hook.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return hook;
}

/**
 * Exact per-minute counts as a store would give them: `total` events a minute, `bad` of them
 * bad, every whole minute of [from, to) from `since` on.
 */
export function steadyMinutes(from: number, to: number, since: number, total: number, bad: number): { total: MinuteSeries; bad: MinuteSeries } {
  const out = { total: new Map<number, number>(), bad: new Map<number, number>() };
  for (let m = Math.max(from, since); m < to; m += 60_000) {
    out.total.set(m, total);
    out.bad.set(m, bad);
  }
  return out;
}
