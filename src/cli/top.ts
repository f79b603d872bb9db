import { fetchSluice } from './http-client.js';
import { parsePrometheusText, quantileBetween, sumBy, total, type Sample } from '../obs/prom-text.js';

/**
 * `sluice top`: a live view of one sluice, read from its /metrics. Rates are the increase of
 * counters between two scrapes; latency quantiles come from histogram buckets the same way.
 */

export interface TopOptions {
  url: string;
  intervalMs: number;
  /** Print one frame (after two scrapes) and return, for scripts. */
  once: boolean;
  out: NodeJS.WritableStream & { isTTY?: boolean };
  signal?: AbortSignal;
}

async function scrape(url: string): Promise<Sample[]> {
  const r = await fetchSluice(new URL('/metrics', url).href);
  if (!r.ok) throw new Error(`GET /metrics answered ${r.status}; is this a sluice with metrics on (obs.metrics)?`);
  return parsePrometheusText(await r.text());
}

const num = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–';
const ms = (s: number): string => (Number.isFinite(s) ? `${num(s * 1000, 1)} ms` : '–');
const secs = (s: number): string => (s < 60 ? `${num(s, 1)} s` : s < 3600 ? `${num(s / 60, 1)} min` : `${num(s / 3600, 1)} h`);

/** One screen, from two scrapes `seconds` apart. Pure. */
export function frame(url: string, before: Sample[], after: Sample[], seconds: number, now = new Date()): string {
  const rate = (name: string, where: Record<string, string | RegExp> = {}): number => (total(after, name, where) - total(before, name, where)) / seconds;
  const events = ['received', 'accepted', 'stored', 'duplicate', 'rejected', 'dead_lettered'] as const;
  const lines = [`sluice top — ${url} — ${now.toISOString()} (every ${num(seconds, 1)} s; Ctrl-C to quit)`, ''];
  lines.push('events/s    ' + events.map((e) => `${e.replace('_', '-')} ${num(rate(`sluice_events_${e}_total`))}`).join('   '));
  const req = rate('sluice_http_request_duration_seconds_count', { route: '/v1/events' });
  const errors = rate('sluice_http_request_duration_seconds_count', { status_code: /^5/ });
  lines.push(
    `ingest      ${num(req, 1)} req/s   p50 ${ms(quantileBetween(before, after, 'sluice_http_request_duration_seconds', 0.5, { route: '/v1/events' }))}` +
      `   p99 ${ms(quantileBetween(before, after, 'sluice_http_request_duration_seconds', 0.99, { route: '/v1/events' }))}   5xx ${num(errors, 2)}/s`,
  );
  lines.push(
    `store       commit p99 ${ms(quantileBetween(before, after, 'sluice_store_commit_duration_seconds', 0.99))}` +
      `   workers busy ${num(100 * rate('sluice_worker_busy_seconds_total'))}%   retries ${num(rate('sluice_worker_retries_total'), 1)}/s`,
  );
  const lagSeconds = Math.max(0, ...sumBy(after, 'sluice_consumer_lag_seconds', 'partition').values());
  lines.push(
    `freshness   ${secs(total(after, 'sluice_freshness_seconds'))} behind   backlog ${num(total(after, 'sluice_log_backlog_events'))} events` +
      `   oldest unprocessed ${secs(lagSeconds)}`,
  );
  const gap = total(after, 'sluice_conservation_gap_events');
  lines.push(`conservation gap ${num(gap)}${gap > 0 ? '   ← events lost or doubled: GET /v1/status with an admin key' : ''}`);
  lines.push(
    `process     RSS ${num(total(after, 'sluice_process_resident_memory_bytes') / 1_048_576)} MiB   event-loop lag p99 ${ms(total(after, 'sluice_nodejs_eventloop_lag_p99_seconds'))}`,
  );
  const accepted = sumBy(after, 'sluice_events_accepted_total', 'tenant');
  const acceptedBefore = sumBy(before, 'sluice_events_accepted_total', 'tenant');
  const tenants = [...accepted]
    .map(([t, v]) => [t, (v - (acceptedBefore.get(t) ?? 0)) / seconds] as const)
    .filter(([, r]) => r > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10);
  if (tenants.length) {
    lines.push('', 'busiest tenants (accepted events/s)');
    for (const [t, r] of tenants) lines.push(`  ${t.padEnd(32)} ${num(r).padStart(12)}`);
  }
  return lines.join('\n') + '\n';
}

export async function top(opts: TopOptions): Promise<void> {
  let before = await scrape(opts.url);
  let at = performance.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, opts.intervalMs));
    if (opts.signal?.aborted) return;
    const after = await scrape(opts.url);
    const now = performance.now();
    const text = frame(opts.url, before, after, (now - at) / 1000);
    opts.out.write(opts.out.isTTY && !opts.once ? `\x1b[2J\x1b[H${text}` : text);
    if (opts.once) return;
    before = after;
    at = now;
  }
}
