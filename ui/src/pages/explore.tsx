import { useMemo, useState } from 'preact/hooks';
import { api, apiText } from '../api.js';
import { Chart, pivot } from '../chart.js';
import { num, text, time } from '../format.js';
import { ErrorBox, useLoad } from '../load.js';
import { navigate, setParams, useRoute } from '../router.js';

/** The body of POST /v1/query, as the builder edits it. */
interface Query {
  event?: string | null;
  from?: string;
  to?: string;
  interval?: string | null;
  measures?: string[];
  group_by?: string[];
  filters?: { field: string; op: string; value: unknown }[];
  order_by?: string | string[];
  limit?: number;
  source?: string;
}
interface Answer {
  columns: string[];
  rows: (string | number | boolean | null)[][];
  watermark: string;
  source: string;
  elapsed_ms: number;
}
interface EventCatalog {
  event_types: { type: string; count: number; last_seen: string | null; properties: { path: string; types: string[] }[] }[];
}
interface Saved {
  id: string;
  name: string;
  query: Query;
}

const DEFAULT: Query = { from: '-24h', to: 'now', interval: '1h', measures: ['count'] };
const INTERVALS = ['1m', '5m', '15m', '1h', '6h', '1d'];
const RANGES = ['-1h', '-6h', '-24h', '-7d', '-30d'];
/** Rows drawn in the table at first; "Show more" adds as many again (the CSV has them all). */
const TABLE_ROWS = 200;
const OPS = ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'contains', 'exists'];

function parseQ(q: string | null): { query: Query; error: string | null } {
  if (!q) return { query: DEFAULT, error: null };
  try {
    const v = JSON.parse(q) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return { query: v as Query, error: null };
  } catch (e: unknown) {
    return { query: DEFAULT, error: `the query in the URL is not JSON (${(e as Error).message}); showing the default` };
  }
}

const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

/** A filter value as typed: a number or boolean when it reads as one, else text. */
function valueOf(s: string): unknown {
  if (s === 'true' || s === 'false') return s === 'true';
  return s.trim() !== '' && !Number.isNaN(Number(s)) ? Number(s) : s;
}

/** `/ui/explore?q=<URL-encoded JSON of the POST /v1/query body>`. */
export function Explore() {
  const route = useRoute();
  const qText = route.params.get('q');
  const { query, error: urlError } = useMemo(() => parseQ(qText), [qText]);
  const answer = useLoad(async (signal) => {
    const a = await api<Answer>('/v1/query', { method: 'POST', body: query, signal });
    performance.mark('sluice:answer');
    return a;
  }, [qText]);
  const catalog = useLoad((signal) => api<EventCatalog>('/v1/catalog', { signal }), []);
  const saved = useLoad((signal) => api<{ saved_queries: Saved[] }>('/v1/saved-queries', { signal }), []);
  const [draft, setDraft] = useState<Query>(query);
  const [draftOf, setDraftOf] = useState(qText);
  const [saveName, setSaveName] = useState('');
  const [tableRows, setTableRows] = useState(TABLE_ROWS);
  // A new query in the URL: the builder shows it, the table starts from its first rows.
  if (draftOf !== qText) {
    setDraft(query);
    setDraftOf(qText);
    setTableRows(TABLE_ROWS);
  }
  const [note, setNote] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);

  const run = (q: Query) => setParams({ q: JSON.stringify(q) });
  const groupBy = query.group_by ?? [];
  const measures = answer.data ? answer.data.columns.filter((c) => c !== 'bucket' && !groupBy.includes(c)) : [];
  const [measure, setMeasure] = useState<string | null>(null);
  const shown = measure && measures.includes(measure) ? measure : (measures[0] ?? 'count');
  const chart = useMemo(() => (answer.data ? pivot(answer.data.columns, answer.data.rows, shown, groupBy) : null), [answer.data, shown, groupBy.join(',')]);
  const types = catalog.data?.event_types ?? [];
  const paths = ['type', 'key', ...new Set(types.filter((t) => !draft.event || t.type === draft.event).flatMap((t) => t.properties.map((p) => p.path)))];

  const download = async () => {
    setActionError(null);
    try {
      const csv = await apiText('/v1/query', { method: 'POST', body: query, accept: 'text/csv' });
      const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `sluice-${(query.event ?? 'events').replace(/[^A-Za-z0-9_-]/g, '_')}.csv`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e: unknown) {
      setActionError((e as Error).message);
    }
  };
  const save = async () => {
    setActionError(null);
    try {
      const s = await api<Saved>('/v1/saved-queries', { method: 'POST', body: { name: saveName, query } });
      setNote(`Saved as "${s.name}".`);
      setSaveName('');
      saved.reload();
    } catch (e: unknown) {
      setActionError((e as Error).message);
    }
  };
  const remove = async (id: string) => {
    setActionError(null);
    try {
      await api(`/v1/saved-queries/${encodeURIComponent(id)}`, { method: 'DELETE' });
      saved.reload();
    } catch (e: unknown) {
      setActionError((e as Error).message);
    }
  };
  const filters = draft.filters ?? [];
  const setFilter = (i: number, f: Partial<{ field: string; op: string; value: unknown }>) => setDraft({ ...draft, filters: filters.map((x, j) => (j === i ? { ...x, ...f } : x)) });

  return (
    <section>
      <div class="toolbar">
        <h2>Explore</h2>
      </div>
      <ErrorBox error={urlError} />
      <form
        class="builder"
        onSubmit={(e) => {
          e.preventDefault();
          run(draft);
        }}
      >
        <label>
          Event type
          <select data-testid="q-event" value={draft.event ?? ''} onChange={(e) => setDraft({ ...draft, event: (e.target as HTMLSelectElement).value || null })}>
            <option value="">(every type)</option>
            {[...new Set([...(draft.event ? [draft.event] : []), ...types.map((t) => t.type)])].map((t) => (
              <option value={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Measures
          <input data-testid="q-measures" value={(draft.measures ?? ['count']).join(', ')} onChange={(e) => setDraft({ ...draft, measures: list((e.target as HTMLInputElement).value) })} placeholder="count, sum:amount, p95:latency_ms" />
        </label>
        <label>
          Group by
          <input data-testid="q-group-by" list="paths" value={(draft.group_by ?? []).join(', ')} onChange={(e) => setDraft({ ...draft, group_by: list((e.target as HTMLInputElement).value) })} placeholder="properties.region" />
        </label>
        <datalist id="paths">
          {paths.map((p) => (
            <option value={p} />
          ))}
        </datalist>
        <label>
          Interval
          <select data-testid="q-interval" value={draft.interval === null ? 'none' : (draft.interval ?? '1h')} onChange={(e) => setDraft({ ...draft, interval: (e.target as HTMLSelectElement).value === 'none' ? null : (e.target as HTMLSelectElement).value })}>
            {INTERVALS.map((i) => (
              <option value={i}>{i}</option>
            ))}
            <option value="none">none (totals)</option>
          </select>
        </label>
        <label>
          From
          <select data-testid="q-from" value={draft.from ?? '-24h'} onChange={(e) => setDraft({ ...draft, from: (e.target as HTMLSelectElement).value })}>
            {[...new Set([...(draft.from ? [draft.from] : []), ...RANGES])].map((r) => (
              <option value={r}>{r}</option>
            ))}
          </select>
        </label>
        <fieldset class="filters">
          <legend>Filters</legend>
          {filters.map((f, i) => (
            <div class="filter">
              <input list="paths" value={f.field} onChange={(e) => setFilter(i, { field: (e.target as HTMLInputElement).value })} aria-label="field" />
              <select value={f.op} onChange={(e) => setFilter(i, { op: (e.target as HTMLSelectElement).value })} aria-label="operator">
                {OPS.map((o) => (
                  <option value={o}>{o}</option>
                ))}
              </select>
              <input value={text(f.value)} onChange={(e) => setFilter(i, { value: valueOf((e.target as HTMLInputElement).value) })} aria-label="value" />
              <button type="button" onClick={() => setDraft({ ...draft, filters: filters.filter((_, j) => j !== i) })}>
                Remove
              </button>
            </div>
          ))}
          <button type="button" onClick={() => setDraft({ ...draft, filters: [...filters, { field: 'properties.', op: 'eq', value: '' }] })}>
            Add filter
          </button>
        </fieldset>
        <div class="actions">
          <button type="submit" data-testid="q-run">
            Run
          </button>
        </div>
      </form>

      <div class="saved">
        <input value={saveName} onInput={(e) => setSaveName((e.target as HTMLInputElement).value)} placeholder="Name this query" aria-label="saved query name" />
        <button type="button" disabled={!saveName.trim()} onClick={save} data-testid="save-query">
          Save
        </button>
        {(saved.data?.saved_queries ?? []).map((s) => (
          <span class="chip">
            <a
              href={`/ui/explore?q=${encodeURIComponent(JSON.stringify(s.query))}`}
              onClick={(e) => {
                e.preventDefault();
                navigate(`/ui/explore?q=${encodeURIComponent(JSON.stringify(s.query))}`);
              }}
            >
              {s.name}
            </a>
            <button type="button" class="link" aria-label="delete saved query" onClick={() => remove(s.id)}>
              ×
            </button>
          </span>
        ))}
        {note && <span class="meta">{note}</span>}
      </div>
      <ErrorBox error={actionError} />
      <ErrorBox error={answer.error} />
      {answer.loading && <p class="loading">Running…</p>}
      {answer.data && (
        <>
          <p class="meta">
            Complete up to <span data-testid="watermark">{time(answer.data.watermark)}</span> (buckets after it are shaded) · answered from <span data-testid="source">{answer.data.source}</span> in {num(answer.data.elapsed_ms)} ms ·{' '}
            {num(answer.data.rows.length)} rows ·{' '}
            <button type="button" class="link" onClick={download} data-testid="csv">
              Download CSV
            </button>
          </p>
          {measures.length > 1 && (
            <label class="inline">
              Chart
              <select value={shown} onChange={(e) => setMeasure((e.target as HTMLSelectElement).value)}>
                {measures.map((m) => (
                  <option value={m}>{m}</option>
                ))}
              </select>
            </label>
          )}
          {chart && chart.x.length > 0 ? <Chart x={chart.x} series={chart.series} watermark={Date.parse(answer.data.watermark) / 1000} testid="chart" /> : <div data-testid="chart" class="chart empty">No time series: set an interval to chart the answer.</div>}
          <table data-testid="result-table">
            <thead>
              <tr>
                {answer.data.columns.map((c) => (
                  <th>{c}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {answer.data.rows.slice(0, tableRows).map((row) => {
                const incomplete = answer.data!.columns[0] === 'bucket' && Date.parse(String(row[0])) + intervalMs(query.interval) > Date.parse(answer.data!.watermark);
                return (
                  <tr data-testid="result-row" class={incomplete ? 'incomplete' : ''} title={incomplete ? 'not complete yet: after the watermark' : undefined}>
                    {row.map((v, i) => (
                      <td class={typeof v === 'number' ? 'num' : ''}>{answer.data!.columns[i] === 'bucket' ? time(v as string) : text(v)}</td>
                    ))}
                  </tr>
                );
              })}
            </tbody>
          </table>
          {answer.data.rows.length > tableRows && (
            <p class="meta" data-testid="rows-cut">
              Showing the first {num(tableRows)} of {num(answer.data.rows.length)} rows; the chart and the CSV download have them all.{' '}
              <button type="button" class="link" onClick={() => setTableRows((n) => n + TABLE_ROWS * 5)}>
                Show more
              </button>
            </p>
          )}
        </>
      )}
    </section>
  );
}

function intervalMs(i: string | null | undefined): number {
  const m = /^(\d+)([mhd])$/.exec(i ?? '1h');
  return m ? Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'] : 0;
}
