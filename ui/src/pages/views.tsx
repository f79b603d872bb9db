import { api, type Who } from '../api.js';
import { num, pretty, time } from '../format.js';
import { ErrorBox, useLoad } from '../load.js';

interface View {
  name: string;
  version: number;
  status: string;
  source: string;
  definition: unknown;
  build: string | null;
  updated_at: string;
  error: string | null;
}
interface Backfill {
  id: string;
  status: string;
  done: number;
  total: number;
  percent: number;
  events_per_second: number;
  eta_seconds: number | null;
}

/** A view's definition as GET /v1/views gives it (src/core/query.ts viewJson). */
interface ViewDefinition {
  event: string;
  filters: { field: string; op: string; value: unknown }[];
  dimensions: string[];
  measures: string[];
  grain: string;
}

/** A view's definition in one line: measures of which events, by which dimensions, per grain, where the filters hold. */
export function definitionText(d: ViewDefinition): string {
  const by = d.dimensions.length > 0 ? ` by ${d.dimensions.join(', ')}` : '';
  const where = d.filters.length > 0 ? ` where ${d.filters.map((f) => `${f.field} ${f.op} ${JSON.stringify(f.value)}`).join(' and ')}` : '';
  return `${d.measures.join(', ')} of ${d.event}${by}, per ${d.grain}${where}`;
}

/** `/ui/views`: view definitions, status and build progress (progress needs an admin key). */
export function Views(props: { who: Who }) {
  const views = useLoad((signal) => api<{ views: View[] }>('/v1/views', { signal }), []);
  const builds = useLoad(async (signal) => (props.who.scope === 'admin' ? api<{ backfills: Backfill[] }>('/v1/backfills', { signal }) : null), [props.who.scope]);
  const byId = new Map((builds.data?.backfills ?? []).map((b) => [b.id, b]));
  return (
    <section>
      <div class="toolbar">
        <h2>Views</h2>
        <button
          type="button"
          onClick={() => {
            views.reload();
            builds.reload();
          }}
        >
          Refresh
        </button>
      </div>
      <ErrorBox error={views.error} />
      <p class="hint" data-testid="views-built-in">
        Built in, not listed: <span class="mono">counts_1m</span>, events per type and minute, kept by every commit; queries of counts by type and time read it
        (<span class="mono">"source": "view:counts_1m"</span>), and <span class="mono">sluice backfill --view counts_1m</span> rebuilds it.
      </p>
      {views.data && views.data.views.length === 0 && <p class="meta">No views declared. Declare one with PUT /v1/views/:name (admin key).</p>}
      <table>
        <thead>
          <tr>
            <th>name</th>
            <th>version</th>
            <th>status</th>
            <th>build</th>
            <th>definition</th>
            <th>updated</th>
          </tr>
        </thead>
        <tbody>
          {views.data?.views.map((v) => {
            const b = v.build ? byId.get(v.build) : undefined;
            return (
              <tr data-testid="view-row">
                <td>{v.name}</td>
                <td class="num">{v.version}</td>
                <td data-testid="view-status">{v.status}</td>
                <td>
                  {b ? `${num(b.done)} of ${num(b.total)} (${b.percent} %), ${num(b.events_per_second)} ev/s${b.eta_seconds === null ? '' : `, ETA ${b.eta_seconds} s`}` : v.status === 'ready' ? 'done' : '–'}
                  {v.error && <div class="error">{v.error}</div>}
                </td>
                <td>
                  <span data-testid="view-definition" title={pretty(v.definition)}>
                    {definitionText(v.definition as ViewDefinition)}
                  </span>
                </td>
                <td>{time(v.updated_at)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
