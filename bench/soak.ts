import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parsePrometheusText, quantileBetween, total, type Sample } from '../src/obs/prom-text.js';
import { eventsFor, percentile, postEvents, queriedTotal, type KeyShape } from './load.js';
import { freePort, keysFrom, startSluice } from './proc.js';

/**
 * `npm run soak`: `sluice up` under a steady load for a long time (an hour by default, at
 * half of what it sustains on 2 cores). Every 10 s
 * it samples RSS and lag; at the end it compares the last quarter of the run with the first,
 * and checks that the store holds exactly what was acknowledged. Flat means: memory and lag
 * do not grow with time.
 *
 * Lag is `sluice_freshness_seconds` (now minus the receive time of the oldest event not yet
 * stored, from the log's positions at the scrape). The soak also asks a count through the
 * view, as a dashboard would, and reports its freshness as a user sees it (now, after the
 * answer, minus its watermark). It asks nothing of the raw events while it runs: with the
 * soak's timestamps spread over an hour, a raw count of the last 5 minutes scans the whole
 * table (0.5 s of both cores at 14M rows), a load that would grow with the soak itself.
 *
 * Each sample also reads /metrics, so that a lag that grows says where the time went: the
 * store's commit latency and records per commit, the log's append latency, the workers' busy
 * ratio and the event loop's lag, all over the 10 s since the sample before.
 *
 * Idempotency keys are UUIDs, as most SDKs send them: they arrive in random order. The key
 * ledger takes them at the speed of keys that arrive in order (a log-structured index, see
 * docs/operations.md), and `sluice up` carries about 32,000 ev/s end to end on 2 cores with
 * either, so the soak runs at 16,000 by default, half of that; `--keys sequential` sends `RUN-N`
 * keys at the same rate.
 *
 * "Half capacity" is checked, not assumed: after the soak, a probe offers as much as 16
 * producers side by side can send for `--probe-seconds` (60), with the log and the store as
 * the hour left them, and reports what ingest acknowledged and the store committed per
 * second. The soak's rate over that capacity is the share it ran at.
 *
 * Flat is judged on medians, the last quarter against the second: the first quarter holds the
 * warm-up (RSS climbs from a cold start as caches and DuckDB's buffers fill). Lag under
 * 0.1 s counts as 0.1 s (the pipeline's batching). Every quarter is printed.
 *
 * Flags: --minutes 60, --rate 16000, --batch 500, --keys uuid|sequential, --probe-seconds 60.
 */
const { values } = parseArgs({
  options: { minutes: { type: 'string' }, rate: { type: 'string' }, batch: { type: 'string' }, keys: { type: 'string' }, 'probe-seconds': { type: 'string' } },
});
const MINUTES = Number(values.minutes ?? 60);
const BATCH = Number(values.batch ?? 500);
const KEYS = (values.keys ?? 'uuid') as KeyShape;
if (KEYS !== 'uuid' && KEYS !== 'sequential') throw new Error(`--keys must be uuid or sequential, not ${String(values.keys)}`);
/** Half of what `sluice up` sustains end to end on 2 cores (see the comment above); the probe after the soak checks it. */
const RATE = Number(values.rate ?? 16_000);
const say = (s: string): void => void process.stderr.write(s + '\n');
const IN_FLIGHT = 8;
const PROBE_SECONDS = Number(values['probe-seconds'] ?? 60);
const PROBE_IN_FLIGHT = 16;
/** The fields of `Inside`, for the medians per quarter (up here: the run below needs them). */
const INSIDE = ['commitP50', 'commitP99', 'recordsPerCommit', 'appendP50', 'busy', 'loopLagP99', 'duckdbBytes', 'storeHeapBytes', 'heapBytes'] as const satisfies readonly (keyof Inside)[];

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-soak-'));
const child = await startSluice(path.join(work, 'data'), await freePort());
try {
  const { writeKey, readKey } = keysFrom(child.stdout);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const end = Date.now() + MINUTES * 60_000;
  let sent = 0;
  let acked = 0;
  /** Refused requests by status and error code: load shed (503) and quotas (429) are answers a producer retries. */
  const refused = new Map<string, number>();
  const post = (body: string) => postEvents(child.url, writeKey, body, agent);
  const samples: { minute: number; sent: number; rss: number; lag: number; freshness: number; inside: Inside }[] = [];
  const started = Date.now();
  let metricsBefore: { at: number; samples: Sample[] } | undefined;
  const query = (q: object) =>
    fetch(`${child.url}/v1/query`, { method: 'POST', headers: { authorization: `Bearer ${readKey}` }, body: JSON.stringify(q) }).then(
      async (r) => ({ answeredAt: Date.now(), ...((await r.json()) as { watermark: string }) }),
    );
  const sampler = setInterval(() => {
    void Promise.all([
      fetch(`${child.url}/metrics`).then(async (r) => ({ at: Date.now(), samples: parsePrometheusText(await r.text()) })),
      query({ from: '-5m', interval: '1m', measures: ['count'] }),
    ]).then(([metrics, view]) => {
      const inside = metricsBefore ? between(metricsBefore.samples, metrics.samples, (metrics.at - metricsBefore.at) / 1000) : undefined;
      metricsBefore = metrics;
      if (!inside) return;
      const s = {
        minute: (Date.now() - started) / 60_000,
        sent,
        rss: child.rss(),
        lag: total(metrics.samples, 'sluice_freshness_seconds'),
        freshness: (view.answeredAt - Date.parse(view.watermark)) / 1000,
        inside,
      };
      samples.push(s);
      say(
        `soak: ${s.minute.toFixed(1)} min, ${sent.toLocaleString('en-US')} sent, RSS ${mib(s.rss)}, lag ${s.lag.toFixed(2)} s, ` +
          `freshness seen by a query ${s.freshness.toFixed(2)} s; ${describe(inside)}`,
      );
    }, () => undefined);
  }, 10_000);
  const every = (BATCH / RATE) * 1000;
  const run = `soak-${Date.now()}`;
  // Producers send side by side (up to IN_FLIGHT requests at a time), so the offered rate does
  // not fall when ingest answers more slowly; the sent figure says if it fell behind anyway.
  const inFlight = new Set<Promise<void>>();
  let failure: Error | null = null;
  const send = async (from: number): Promise<void> => {
    const body = '[' + eventsFor(run, from, BATCH, Date.now(), KEYS).join(',') + ']';
    // A well-behaved producer: on 429 or 503 it waits Retry-After and sends the same batch
    // again; on a connection reset (a keep-alive socket the server closed as it was reused)
    // it sends the same batch again at once: the keys make either safe.
    for (;;) {
      const r = await post(body).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ECONNRESET' && e.code !== 'EPIPE') throw e;
        return { status: 0, code: e.code, retryAfter: 0 };
      });
      if (r.status === 202) break;
      if (r.status !== 0 && r.status !== 429 && r.status !== 503) throw new Error(`ingest answered ${r.status} ${r.code} at ${from} events`);
      const what = r.status === 0 ? r.code : `${r.status} ${r.code}`;
      refused.set(what, (refused.get(what) ?? 0) + 1);
      if (r.status === 0) continue;
      say(`soak: ${what} at ${from.toLocaleString('en-US')} events; retrying after ${r.retryAfter} s`);
      await new Promise((res) => setTimeout(res, Math.max(1, r.retryAfter || 1) * 1000));
    }
    acked += BATCH;
  };
  /** Sends batches until `until`, at most `producers` requests at a time, one per `every` ms (0: as fast as they are answered). */
  const drive = async (until: number, producers: number, every: number): Promise<void> => {
    for (let next = Date.now(); Date.now() < until; next += every) {
      if (inFlight.size >= producers) await Promise.race(inFlight);
      if (failure) throw failure;
      const request: Promise<void> = send(sent)
        .catch((e: unknown) => void (failure ??= e as Error))
        .finally(() => inFlight.delete(request));
      inFlight.add(request);
      sent += BATCH;
      const wait = next + every - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    await Promise.all(inFlight);
    if (failure) throw failure;
  };
  await drive(end, IN_FLIGHT, every);
  const offered = sent / ((Date.now() - started) / 1000);
  clearInterval(sampler);

  // The capacity probe: no pacing, twice the producers, the same keys and checks.
  let probe: { acked: number; committed: number; lagAtEnd: number; seconds: number } | undefined;
  if (PROBE_SECONDS > 0) {
    say(`soak: probing capacity for ${PROBE_SECONDS} s (${PROBE_IN_FLIGHT} producers, no pacing)`);
    const scrape = async () => ({ at: Date.now(), acked, samples: parsePrometheusText(await (await fetch(`${child.url}/metrics`)).text()) });
    const before = await scrape();
    await drive(Date.now() + PROBE_SECONDS * 1000, PROBE_IN_FLIGHT, 0);
    const after = await scrape();
    const seconds = (after.at - before.at) / 1000;
    const committed = total(after.samples, 'sluice_store_committed_records_total') - total(before.samples, 'sluice_store_committed_records_total');
    probe = { acked: (after.acked - before.acked) / seconds, committed: committed / seconds, lagAtEnd: total(after.samples, 'sluice_freshness_seconds'), seconds };
  }
  agent.destroy();
  let stored = 0;
  for (const deadline = Date.now() + 120_000; Date.now() < deadline && stored < acked; await new Promise((r) => setTimeout(r, 500))) stored = await queriedTotal(child.url, readKey);
  const quarters = [0, 1, 2, 3].map((i) => samples.slice(Math.floor((i * samples.length) / 4), Math.floor(((i + 1) * samples.length) / 4)));
  const second = quarters[1]!;
  const last = quarters[3]!;
  const rss = [median(second.map((s) => s.rss)), median(last.map((s) => s.rss))] as const;
  const lag = [Math.max(0.1, median(second.map((s) => s.lag))), Math.max(0.1, median(last.map((s) => s.lag)))] as const;
  const rssRatio = rss[1] / rss[0];
  const lagRatio = lag[1] / lag[0];
  const capacity = probe ? Math.min(probe.acked, probe.committed) : NaN;
  process.stdout.write(
    [
      '',
      `soak: ${MINUTES} min at ${RATE.toLocaleString('en-US')} ev/s (${KEYS} keys), ${acked.toLocaleString('en-US')} events acknowledged, ${stored.toLocaleString('en-US')} queryable at the end (events of the last 3 h)`,
      `  RSS median, second quarter ${mib(rss[0])}, last quarter ${mib(rss[1])}: ratio ${rssRatio.toFixed(2)}  target flat (≤ 1.10): ${rssRatio <= 1.1 ? 'met' : 'MISSED'}`,
      `  lag median, second quarter ${lag[0].toFixed(2)} s, last quarter ${lag[1].toFixed(2)} s (floor 0.1 s): ratio ${lagRatio.toFixed(2)}  target flat (≤ 1.10): ${lagRatio <= 1.1 ? 'met' : 'MISSED'}`,
      `  RSS max ${mib(Math.max(...samples.map((s) => s.rss)))}, lag max ${Math.max(...samples.map((s) => s.lag)).toFixed(2)} s (one sample each)`,
      // Freshness over the whole run (every 10 s sample), as the issue's target states it.
      `  freshness p99 over the run ${percentile(samples.map((s) => s.lag), 0.99).toFixed(2)} s (lag), ${percentile(samples.map((s) => s.freshness), 0.99).toFixed(2)} s (seen by a query)  target ≤ 1 s: ${percentile(samples.map((s) => s.lag), 0.99) <= 1 ? 'met' : 'MISSED'}`,
      `  offered ${fmt(offered)} ev/s on average (target ${fmt(RATE)})`,
      probe
        ? `  capacity at the end (${probe.seconds.toFixed(0)} s probe): ingest acknowledged ${fmt(probe.acked)} ev/s, the store committed ${fmt(probe.committed)} ev/s, lag ${probe.lagAtEnd.toFixed(1)} s at its end; ` +
          `the soak ran at ${((RATE / capacity) * 100).toFixed(0)}% of ${fmt(capacity)} ev/s  target ≤ 50%: ${RATE <= capacity / 2 ? 'met' : 'MISSED'}`
        : '  capacity: not probed (--probe-seconds 0)',
      `  stored = acknowledged: ${stored === acked ? 'yes' : `NO (${stored} of ${acked})`}`,
      `  requests refused or reset, and retried: ${refused.size === 0 ? 'none' : [...refused].map(([k, n]) => `${n} × ${k}`).join(', ')}`,
      '',
      'per quarter (medians of the 10 s samples):',
      ...quarters.map((part, i) => {
        const med = (f: (s: (typeof samples)[number]) => number): number => median(part.map(f));
        return `  Q${i + 1}  RSS ${mib(med((s) => s.rss))}, lag ${med((s) => s.lag).toFixed(2)} s (p90 ${p90(part.map((s) => s.lag)).toFixed(2)} s), freshness seen by a query ${med((s) => s.freshness).toFixed(2)} s; ${describe(
          Object.fromEntries(INSIDE.map((k) => [k, med((s) => s.inside[k])])) as unknown as Inside,
        )}`;
      }),
      '',
    ].join('\n'),
  );
} finally {
  await child.stop();
  fs.rmSync(work, { recursive: true, force: true });
}

/** What /metrics says about the interval between two scrapes. */
interface Inside {
  commitP50: number;
  commitP99: number;
  recordsPerCommit: number;
  appendP50: number;
  /** Share of wall time the workers spent in batches. */
  busy: number;
  loopLagP99: number;
  /** Where RSS goes: DuckDB's memory by its own accounting, the store thread's and the HTTP thread's V8 heaps. */
  duckdbBytes: number;
  storeHeapBytes: number;
  heapBytes: number;
}

function between(before: Sample[], after: Sample[], seconds: number): Inside {
  const delta = (name: string): number => total(after, name) - total(before, name);
  return {
    commitP50: quantileBetween(before, after, 'sluice_store_commit_duration_seconds', 0.5),
    commitP99: quantileBetween(before, after, 'sluice_store_commit_duration_seconds', 0.99),
    recordsPerCommit: delta('sluice_store_committed_records_total') / Math.max(1, delta('sluice_store_commit_duration_seconds_count')),
    appendP50: quantileBetween(before, after, 'sluice_log_append_duration_seconds', 0.5),
    busy: delta('sluice_worker_busy_seconds_total') / seconds,
    loopLagP99: total(after, 'sluice_nodejs_eventloop_lag_p99_seconds'),
    duckdbBytes: total(after, 'sluice_store_memory_bytes'),
    storeHeapBytes: total(after, 'sluice_store_thread_heap_bytes'),
    heapBytes: total(after, 'sluice_nodejs_heap_size_total_bytes'),
  };
}

function describe(i: Inside): string {
  return (
    `commit p50 ${(i.commitP50 * 1000).toFixed(1)} ms, p99 ${(i.commitP99 * 1000).toFixed(0)} ms, ${i.recordsPerCommit.toFixed(0)} records/commit; ` +
    `append p50 ${(i.appendP50 * 1000).toFixed(1)} ms; workers busy ${(i.busy * 100).toFixed(0)}%; loop lag p99 ${(i.loopLagP99 * 1000).toFixed(0)} ms; ` +
    `DuckDB ${mib(i.duckdbBytes)}, heaps: store thread ${mib(i.storeHeapBytes)}, HTTP thread ${mib(i.heapBytes)}`
  );
}

function mib(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(0)} MiB`;
}

function fmt(rate: number): string {
  return rate.toLocaleString('en-US', { maximumFractionDigits: 0 });
}

/** Percentiles of the samples that have a value (a quiet interval's latency is NaN). */
function median(xs: number[]): number {
  return percentile(xs.filter(Number.isFinite), 0.5);
}
function p90(xs: number[]): number {
  return percentile(xs.filter(Number.isFinite), 0.9);
}
