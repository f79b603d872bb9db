import { createHash } from 'node:crypto';
import http from 'node:http';

/**
 * The load: realistic events (a type among a few, a user key among 10,000, a timestamp in the
 * last hour, unique idempotency keys, small properties), pre-encoded into request bodies so
 * that the generator spends its time sending, not building JSON.
 */
const TYPES = ['page_view', 'page_view', 'page_view', 'click', 'checkout', 'signup'];

/**
 * How idempotency keys look: `sequential` (`RUN-N`, which arrive in the order they sort) or
 * `uuid` (a UUID per event, derived from RUN and N so that a resend carries the same one, as
 * Segment's messageId does: keys that arrive in random order).
 */
export type KeyShape = 'sequential' | 'uuid';

function keyFor(run: string, n: number, shape: KeyShape): string {
  if (shape === 'sequential') return `${run}-${n}`;
  const h = createHash('md5').update(`${run}-${n}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function eventsFor(run: string, from: number, count: number, now = Date.now(), keys: KeyShape = 'sequential'): string[] {
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    const n = from + i;
    const type = TYPES[n % TYPES.length]!;
    const ts = new Date(now - ((n * 7919) % 3_600_000)).toISOString();
    out[i] =
      `{"type":"${type}","key":"user-${n % 10_000}","ts":"${ts}","idempotency_key":"${keyFor(run, n, keys)}",` +
      `"properties":{"path":"/products/${n % 500}","amount":${(n % 10_000) / 100},"plan":"pro"},"context":{"app":"web","locale":"en-GB"}}`;
  }
  return out;
}

export function batchBodies(run: string, total: number, batchSize: number, keys: KeyShape = 'sequential'): Buffer[] {
  const bodies: Buffer[] = [];
  for (let from = 0; from < total; from += batchSize) {
    bodies.push(Buffer.from('[' + eventsFor(run, from, Math.min(batchSize, total - from), Date.now(), keys).join(',') + ']'));
  }
  return bodies;
}

/** The value at rank ⌈p·n⌉ of `xs` (the nearest-rank percentile); NaN when there is none. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! : NaN;
}

export interface LoadResult {
  events: number;
  requests: number;
  seconds: number;
  eventsPerSecond: number;
  /** Request latency percentiles in ms. */
  p50: number;
  p99: number;
}

/**
 * Posts every body once, `concurrency` at a time over keep-alive connections. A non-2xx answer
 * is an error: a benchmark that counts refused events as throughput measures nothing.
 */
export async function post(url: string, key: string, bodies: Buffer[], eventsPerBody: (i: number) => number, concurrency: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const target = new URL('/v1/events', url);
  const latencies: number[] = [];
  let next = 0;
  let events = 0;
  const one = (body: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const req = http.request(
        target,
        { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${key}` } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            latencies.push(performance.now() - t0);
            if (res.statusCode !== 202) reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString()}`));
            else resolve();
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) {
        const i = next++;
        await one(bodies[i]!);
        events += eventsPerBody(i);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { events, requests: bodies.length, seconds, eventsPerSecond: events / seconds, p50: at(0.5), p99: at(0.99) };
}

/**
 * One POST /v1/events of `body`: its status, its Retry-After in seconds (NaN when there is
 * none) and its error code ('' when accepted or not JSON).
 */
export function postEvents(url: string, key: string, body: string, agent: http.Agent): Promise<{ status: number; retryAfter: number; code: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL('/v1/events', url), { method: 'POST', agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let code = '';
        try {
          if (res.statusCode !== 202) code = String((JSON.parse(text) as { code?: unknown }).code ?? '');
        } catch {
          // Not JSON: the status says enough.
        }
        resolve({ status: res.statusCode ?? 0, retryAfter: Number(res.headers['retry-after'] ?? NaN), code });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Total count of events the query API answers for the last two hours (all types). */
export async function queriedTotal(url: string, readKey: string): Promise<number> {
  const r = await fetch(new URL('/v1/query', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${readKey}` },
    body: JSON.stringify({ from: '-3h', to: 'now', interval: '1h', measures: ['count'] }),
  });
  if (!r.ok) throw new Error(`query: HTTP ${r.status}: ${await r.text()}`);
  const body = (await r.json()) as { rows: [string, number][] };
  return body.rows.reduce((s, [, n]) => s + n, 0);
}
