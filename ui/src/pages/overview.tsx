import { useMemo } from 'preact/hooks';
import { api, type Who } from '../api.js';
import { Chart } from '../chart.js';
import { num, time } from '../format.js';
import { ErrorBox, useLoad } from '../load.js';
import { setParams, useRoute } from '../router.js';

/** The ranges the Overview offers, each with the bucket that keeps its chart readable. */
const RANGES: Record<string, { from: string; interval: string }> = {
  '1h': { from: '-1h', interval: '1m' },
  '24h': { from: '-24h', interval: '15m' },
  '7d': { from: '-7d', interval: '1h' },
};

interface Signals {
  columns: string[];
  rows: (string | number | null)[][];
  watermark: string;
}

const COUNTS = ['received', 'accepted', 'rejected', 'duplicate', 'stored', 'dead_lettered'] as const;

/** What each count is (GET /v1/signals, src/obs/signals.ts): shown on hover. */
const MEANING: Record<(typeof COUNTS)[number], string> = {
  received: 'events in ingest requests',
  accepted: 'received less rejected and duplicates: each ends stored or dead-lettered (an event dead-lettered at the door counts here, though its answer said accepted 0 and dead_lettered true)',
  rejected: 'refused in the answer (400s per event), never kept',
  duplicate: 'an idempotency key seen before: counted once',
  stored: 'committed to the store',
  dead_lettered: 'kept in the dead-letter store with a reason: replayable',
};

interface Status {
  freshness_seconds: number;
  log: { backlog_events: number };
  quota: { events_per_second: number | null; bytes_per_second: number | null; backlog: number | null; current_backlog: number };
  conservation: { gap_events: number } | null;
}
interface TenantInfo {
  settings: { paused: { since: number; reason: string } | null };
}

/** `/ui/?range=1h|24h|7d`: the tenant's pipeline over time. */
export function Overview(props: { who: Who }) {
  const route = useRoute();
  const range = RANGES[route.params.get('range') ?? ''] ? route.params.get('range')! : '1h';
  const r = RANGES[range]!;
  const signals = useLoad((signal) => api<Signals>(`/v1/signals?from=${encodeURIComponent(r.from)}&interval=${r.interval}`, { signal }), [range]);
  const admin = props.who.scope === 'admin';
  const status = useLoad(
    async (signal) => (admin ? await Promise.all([api<Status>('/v1/status', { signal }), api<TenantInfo>('/v1/tenant', { signal })]) : null),
    [admin, range],
  );
  const data = signals.data;
  const col = (name: string) => data?.columns.indexOf(name) ?? -1;
  const totals = useMemo(() => {
    const t: Record<string, number> = {};
    if (!data) return t;
    for (const c of [...COUNTS, 'gap']) t[c] = data.rows.reduce((s, row) => s + (Number(row[data.columns.indexOf(c)]) || 0), 0);
    return t;
  }, [data]);
  const last = (name: string) => {
    if (!data) return null;
    for (let i = data.rows.length - 1; i >= 0; i--) {
      const v = data.rows[i]![col(name)];
      if (v !== null && v !== undefined) return v as number;
    }
    return null;
  };
  const worst = (name: string) => (data ? data.rows.reduce<number | null>((m, row) => (row[col(name)] === null ? m : Math.max(m ?? 0, Number(row[col(name)]))), null) : null);
  const chart = useMemo(() => {
    if (!data) return null;
    const x = data.rows.map((row) => Date.parse(String(row[0])) / 1000);
    const series = ['received', 'stored', 'dead_lettered', 'rejected', 'duplicate'].map((c) => ({ label: c, values: data.rows.map((row) => row[data.columns.indexOf(c)] as number | null) }));
    return { x, series, watermark: Date.parse(data.watermark) / 1000 };
  }, [data]);
  return (
    <section>
      <div class="toolbar">
        <h2>Overview</h2>
        <div class="segmented" role="group" aria-label="Range">
          {Object.keys(RANGES).map((k) => (
            <button type="button" class={k === range ? 'active' : ''} data-testid={`range-${k}`} onClick={() => setParams({ range: k === '1h' ? null : k })}>
              Last {k}
            </button>
          ))}
        </div>
      </div>
      <ErrorBox error={signals.error} />
      {data && (
        <>
          <div class="cards">
            {COUNTS.map((c) => (
              <div class="card" title={MEANING[c]}>
                <div class="label">{c.replace('_', '-')}</div>
                <div class="value" data-testid={`overview-${c}`}>
                  {num(totals[c])}
                </div>
              </div>
            ))}
            <div class={`card ${totals.gap ? 'bad' : ''}`}>
              <div class="label">conservation gap</div>
              <div class="value" data-testid="overview-gap">
                {num(totals.gap)}
              </div>
            </div>
            <div class="card">
              <div class="label">freshness (now)</div>
              <div class="value">{last('freshness_seconds') === null ? '–' : `${num(last('freshness_seconds'))} s`}</div>
            </div>
            <div class="card">
              <div class="label">consumer lag (now)</div>
              <div class="value">{num(last('lag_events'))}</div>
            </div>
            <div class="card">
              <div class="label">ingest p99 (worst)</div>
              <div class="value">{worst('ingest_p99_ms') === null ? '–' : `${num(worst('ingest_p99_ms'))} ms`}</div>
            </div>
            <div class="card">
              <div class="label">ingest errors (worst)</div>
              <div class="value">{worst('ingest_error_rate') === null ? '–' : `${num(Math.round(worst('ingest_error_rate')! * 10000) / 100)} %`}</div>
            </div>
          </div>
          <p class="meta">
            Complete up to <span data-testid="watermark">{time(data.watermark)}</span>; later buckets are shaded and may still grow. Counts are by minute of receipt.
          </p>
          {chart && <Chart x={chart.x} series={chart.series} watermark={chart.watermark} testid="overview-chart" />}
        </>
      )}
      {admin && status.data && (
        <div class="cards">
          <div class={`card ${status.data[1].settings.paused ? 'bad' : ''}`}>
            <div class="label">breaker</div>
            <div class="value small" data-testid="breaker">
              {status.data[1].settings.paused ? `open: ${status.data[1].settings.paused.reason}` : 'closed (flowing)'}
            </div>
          </div>
          <div class="card">
            <div class="label">quota: events/s</div>
            <div class="value small">{status.data[0].quota.events_per_second === null ? 'unlimited' : num(status.data[0].quota.events_per_second)}</div>
          </div>
          <div class="card">
            <div class="label">quota: backlog used</div>
            <div class="value small">
              {num(status.data[0].quota.current_backlog)}
              {status.data[0].quota.backlog === null ? '' : ` of ${num(status.data[0].quota.backlog)}`}
            </div>
          </div>
        </div>
      )}
    </section>
  );
}
