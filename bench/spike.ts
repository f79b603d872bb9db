import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { openEmbeddedCatalog } from '../src/backends/embedded.js';
import { loadConfig } from '../src/config/load.js';
import { percentile } from './load.js';
import { freePort, keysFrom, startSluice, type Child } from './proc.js';

/**
 * A tenant's spike against its neighbour. Tenant B sends at a steady rate; tenant A has a
 * quota and sends at it in the first run (the baseline), at ten times it in the second,
 * ignoring the 429s. B's request latency and freshness (send → queryable) are measured in
 * both runs. Also: A's 429s, that everything acknowledged is stored exactly once, RSS.
 */

export interface SpikeRun {
  bP99: number;
  bP50: number;
  bFreshnessP99: number;
  bFreshnessP50: number;
  bSent: number;
  aAccepted: number;
  aRefused: number;
  stored: { a: number; b: number };
  rssStart: number;
  rssEnd: number;
  rssMax: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function postJson(agent: http.Agent, url: string, key: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url + '/v1/events', { method: 'POST', agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function count(url: string, key: string): Promise<number> {
  const r = await fetch(`${url}/v1/query`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: JSON.stringify({ from: '-1h', to: 'now', interval: null, measures: ['count'], source: 'raw' }) });
  return ((await r.json()) as { rows: [number][] }).rows[0]![0];
}

const events = (tenant: string, from: number, n: number): string =>
  JSON.stringify(Array.from({ length: n }, (_, i) => ({ type: 'tick', key: `${tenant}-${(from + i) % 1000}`, idempotency_key: `${tenant}-${from + i}`, properties: { n: from + i } })));

async function run(dir: string, spike: boolean, opts: { seconds: number; bRate: number; aQuota: number }, say: (s: string) => void): Promise<SpikeRun> {
  const dataDir = path.join(dir, spike ? 'spike' : 'calm');
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const c: Child = await startSluice(dataDir, port);
  try {
    const b = keysFrom(c.stdout);
    const catalog = openEmbeddedCatalog(loadConfig({ flags: { dataDir }, env: {} }));
    const a = await catalog.createTenant('spiky');
    await catalog.updateSettings('spiky', { quota: { eventsPerSecond: opts.aQuota } }, 'bench');
    const aRead = a.readKey;
    await catalog.close();
    const agentA = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const agentB = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const latencies: number[] = [];
    const sentAt: { total: number; at: number }[] = [];
    const freshness: number[] = [];
    let bSent = 0;
    let aAccepted = 0;
    let aRefused = 0;
    const rss: number[] = [c.rss()];
    const end = Date.now() + opts.seconds * 1000;
    // B: batches of 100 at its rate, one request at a time, as a steady producer does.
    const bLoop = (async () => {
      const every = (100 / opts.bRate) * 1000;
      for (let next = Date.now(); Date.now() < end; next += every) {
        const t = performance.now();
        const r = await postJson(agentB, c.url, b.writeKey, events('b', bSent, 100));
        if (r.status !== 202) throw new Error(`tenant B was refused: ${r.status} ${r.body}`);
        latencies.push(performance.now() - t);
        bSent += 100;
        sentAt.push({ total: bSent, at: Date.now() });
        await sleep(Math.max(0, next + every - Date.now()));
      }
    })();
    // A: at its quota, or ten times it, in batches of 500, 4 in flight, 429s ignored (a misbehaving producer).
    const aLoops = Array.from({ length: 4 }, (_, w) =>
          (async () => {
            const every = (500 / (opts.aQuota * (spike ? 10 : 0.95))) * 1000 * 4;
            // A refused body is sent again as it is (its keys were never accepted): the load
            // generator shares the machine, and building ten times the bodies would slow sluice by itself.
            let body = events('a', w * 500, 500);
            for (let i = w, next = Date.now(); Date.now() < end; next += every) {
              const r = await postJson(agentA, c.url, a.writeKey, body);
              if (r.status === 202) {
                aAccepted += (JSON.parse(r.body) as { accepted: number }).accepted;
                i += 4;
                body = events('a', i * 500, 500);
              } else if (r.status === 429) aRefused++;
              else throw new Error(`tenant A: ${r.status} ${r.body}`);
              await sleep(Math.max(0, next + every - Date.now()));
            }
          })(),
        );
    // Freshness of B: for each batch, the time from its send to the first poll that counts it
    // (polls every 50 ms, so each figure is at most 50 ms late).
    const fLoop = (async () => {
      let seen = 0;
      let lastRss = 0;
      while (Date.now() < end || seen < sentAt.length) {
        await sleep(50);
        const n = await count(c.url, b.readKey);
        const now = Date.now();
        while (seen < sentAt.length && sentAt[seen]!.total <= n) freshness.push((now - sentAt[seen++]!.at) / 1000);
        if (now - lastRss > 500) {
          rss.push(c.rss());
          lastRss = now;
        }
        if (Date.now() > end + 30_000) break;
      }
    })();
    await Promise.all([bLoop, fLoop, ...aLoops]);
    for (const deadline = Date.now() + 60_000; Date.now() < deadline && (await count(c.url, b.readKey)) < bSent; ) await sleep(200);
    for (const deadline = Date.now() + 60_000; Date.now() < deadline && (await count(c.url, aRead)) < aAccepted; ) await sleep(200);
    const stored = { a: await count(c.url, aRead), b: await count(c.url, b.readKey) };
    agentA.destroy();
    agentB.destroy();
    say(`spike: tenant A at ${spike ? '10×' : '0.95×'} its quota: B sent ${bSent}, A accepted ${aAccepted}, refused ${aRefused} requests`);
    return {
      bP50: percentile(latencies, 0.5),
      bP99: percentile(latencies, 0.99),
      bFreshnessP99: percentile(freshness, 0.99),
      bFreshnessP50: percentile(freshness, 0.5),
      bSent,
      aAccepted,
      aRefused,
      stored,
      rssStart: rss[0]!,
      rssEnd: rss[rss.length - 1]!,
      rssMax: Math.max(...rss),
    };
  } finally {
    await c.stop();
  }
}

export async function spikeBench(dir: string, seconds: number, say: (s: string) => void) {
  const opts = { seconds, bRate: 2_000, aQuota: 5_000 };
  say(`spike: ${seconds} s with tenant A at its quota of ${opts.aQuota} ev/s, then at 10× it; tenant B steady at ${opts.bRate} ev/s`);
  // Alternating runs, two of each, share the machine's drift; the two baselines show the noise.
  const runs: SpikeRun[] = [];
  for (const spike of [false, true, false, true]) runs.push(await run(path.join(dir, String(runs.length)), spike, opts, say));
  const mean = (rs: SpikeRun[]): SpikeRun => {
    const avg = (f: (r: SpikeRun) => number) => rs.reduce((a, r) => a + f(r), 0) / rs.length;
    return {
      bP50: avg((r) => r.bP50),
      bP99: avg((r) => r.bP99),
      bFreshnessP50: avg((r) => r.bFreshnessP50),
      bFreshnessP99: avg((r) => r.bFreshnessP99),
      bSent: rs[rs.length - 1]!.bSent,
      aAccepted: rs[rs.length - 1]!.aAccepted,
      aRefused: rs[rs.length - 1]!.aRefused,
      stored: rs[rs.length - 1]!.stored,
      rssStart: Math.min(...rs.map((r) => r.rssStart)),
      rssEnd: Math.max(...rs.map((r) => r.rssEnd)),
      rssMax: Math.max(...rs.map((r) => r.rssMax)),
    };
  };
  const calmRuns = [runs[0]!, runs[2]!];
  const spikyRuns = [runs[1]!, runs[3]!];
  const exact = runs.every((r) => r.stored.a === r.aAccepted && r.stored.b === r.bSent);
  return { ...opts, calm: mean(calmRuns), spiky: mean(spikyRuns), calmRuns, spikyRuns, exact };
}
