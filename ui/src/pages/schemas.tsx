import { useState } from 'preact/hooks';
import { api, type Who } from '../api.js';
import { pretty, time } from '../format.js';
import { ErrorBox, useLoad } from '../load.js';
import { setParams, useRoute } from '../router.js';

interface SchemaVersion {
  type: string;
  version: number;
  owner: string;
  schema: unknown;
  created_at: string;
  /** The version ingest enforces: the latest unless a rollout holds it or rolled it back (null: none). */
  enforced_version?: number | null;
  versions?: { version: number; owner: string; created_at: string; created_by: string }[];
}

/** One change between two versions (src/schema/diff.ts Change): `path` points into the schema. */
interface SchemaChange {
  op: 'add' | 'remove' | 'change';
  path: string;
  from?: unknown;
  to?: unknown;
}

/** A schema diff, one change a row: what was added, removed or changed where, before and after. */
function DiffTable(props: { changes: SchemaChange[] }) {
  const value = (v: unknown) => (v === undefined ? '' : JSON.stringify(v));
  if (props.changes.length === 0) return <p class="meta" data-testid="schema-diff">No differences.</p>;
  return (
    <table data-testid="schema-diff">
      <thead>
        <tr>
          <th>change</th>
          <th>where in the schema</th>
          <th>before</th>
          <th>after</th>
        </tr>
      </thead>
      <tbody>
        {props.changes.map((c) => (
          <tr data-testid="schema-diff-change">
            <td>{c.op}</td>
            <td>
              <code>{c.path || '/'}</code>
            </td>
            <td>
              <code>{value(c.from)}</code>
            </td>
            <td>
              <code>{value(c.to)}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** What PUT /v1/schemas/:type answers (src/schema/publish.ts PublishReport), the parts shown. */
interface PublishReport {
  version: number;
  published: boolean;
  dry_run: boolean;
  compatible: boolean;
  incompatibilities: { path: string; message: string }[];
  traffic: { checked: number; failed: number; already_rejected: number; examples: { path: string; message: string; count: number }[] };
  compared_with: number | null;
}

/** A check's or a publish's answer in words: compatibility, what recent traffic it would refuse, with examples. */
function ReportSummary(props: { report: PublishReport }) {
  const r = props.report;
  const against = r.compared_with === null ? 'no schema (this is the first version)' : `v${r.compared_with}, the version ingest enforces`;
  const { checked, failed, already_rejected: already, examples } = r.traffic;
  return (
    <div data-testid="schema-report-summary">
      <p class="meta" data-testid="schema-report-verdict">
        {r.published ? `Published v${r.version}.` : r.dry_run ? `Checked as v${r.version}, not published.` : `Not published.`} Against {against}:{' '}
        {r.compatible ? 'compatible (accepts everything it accepts).' : `narrower in ${r.incompatibilities.length} place${r.incompatibilities.length === 1 ? '' : 's'}.`}
      </p>
      {r.incompatibilities.length > 0 && (
        <ul data-testid="schema-report-incompatibilities">
          {r.incompatibilities.map((i) => (
            <li>
              <code>{i.path || '/'}</code>: {i.message}
            </li>
          ))}
        </ul>
      )}
      <p class="meta" data-testid="schema-report-traffic">
        {checked === 0
          ? 'No recent events of this type were checked (none stored yet, or the store did not answer).'
          : `${failed.toLocaleString('en-US')} of the last ${checked.toLocaleString('en-US')} stored events would be refused${already > 0 ? ` (and ${already.toLocaleString('en-US')} more that the enforced version refuses already)` : ''}.`}
      </p>
      {examples.length > 0 && (
        <table data-testid="schema-report-examples">
          <thead>
            <tr>
              <th>path</th>
              <th>why</th>
              <th>events</th>
            </tr>
          </thead>
          <tbody>
            {examples.map((e) => (
              <tr>
                <td>
                  <code>{e.path || '/'}</code>
                </td>
                <td>{e.message}</td>
                <td class="num">{e.count.toLocaleString('en-US')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {!r.published && !r.compatible && (
        <p class="hint">Publishing a narrower version needs a reason and force (sluice schema push TYPE FILE --force --reason …), or roll it out with a rollout to see what it refuses first.</p>
      )}
    </div>
  );
}

/** `/ui/schemas?type=&from=&to=`: event types, versions, owners, diffs; a draft checked against recent traffic, then published. */
export function Schemas(props: { who: Who }) {
  const route = useRoute();
  const type = route.params.get('type');
  const list = useLoad((signal) => api<{ schemas: SchemaVersion[] }>('/v1/schemas', { signal }), []);
  const one = useLoad(async (signal) => (type ? api<SchemaVersion>(`/v1/schemas/${encodeURIComponent(type)}`, { signal }) : null), [type]);
  const to = Number(route.params.get('to')) || one.data?.version || 0;
  const from = route.params.get('from') === null ? to - 1 : Number(route.params.get('from'));
  const diff = useLoad(
    async (signal) => (type && to > 0 ? api<{ diff: unknown }>(`/v1/schemas/${encodeURIComponent(type)}/diff?from=${Math.max(0, from)}&to=${to}`, { signal }) : null),
    [type, from, to],
  );
  const [draft, setDraft] = useState('');
  const [owner, setOwner] = useState(props.who.team ?? '');
  const [report, setReport] = useState<unknown>(null);
  const [error, setError] = useState<string | null>(null);
  const put = async (dryRun: boolean) => {
    setError(null);
    try {
      const schema = JSON.parse(draft) as unknown;
      setReport(await api(`/v1/schemas/${encodeURIComponent(type!)}`, { method: 'PUT', body: { schema, ...(owner ? { owner } : {}), dry_run: dryRun } }));
      if (!dryRun) {
        list.reload();
        one.reload();
      }
    } catch (e: unknown) {
      setError((e as Error).message);
    }
  };
  return (
    <section>
      <h2>Schemas</h2>
      <ErrorBox error={list.error} />
      <table>
        <thead>
          <tr>
            <th>type</th>
            <th>latest version</th>
            <th>enforced</th>
            <th>owner</th>
            <th>published</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.schemas.map((s) => (
            <tr class={`clickable ${s.type === type ? 'active' : ''}`} data-testid="schema-row" onClick={() => setParams({ type: s.type, from: null, to: null })}>
              <td>{s.type}</td>
              <td class="num">{s.version}</td>
              <td class="num" data-testid="schema-enforced" title={s.enforced_version === s.version ? '' : `v${s.version} is under a rollout or was rolled back`}>
                {s.enforced_version === undefined ? '' : s.enforced_version === null ? 'none' : `v${s.enforced_version}`}
                {s.enforced_version !== undefined && s.enforced_version !== s.version && <span class="hint"> (v{s.version} held by a rollout or rolled back)</span>}
              </td>
              <td>{s.owner}</td>
              <td>{time(s.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {type && (
        <div class="panel">
          <h3>{type}</h3>
          <ErrorBox error={one.error} />
          {one.data?.versions && (
            <p class="meta">
              Versions:{' '}
              {one.data.versions.map((v) => (
                <span class="chip">
                  v{v.version} by {v.owner} ({time(v.created_at)})
                </span>
              ))}
            </p>
          )}
          {to > 0 && (
            <>
              <h4 class="actions">
                Diff
                <select value={String(Math.max(0, from))} onChange={(e) => setParams({ from: (e.target as HTMLSelectElement).value })} aria-label="diff from version">
                  <option value="0">(none)</option>
                  {(one.data?.versions ?? []).map((v) => (
                    <option value={String(v.version)}>v{v.version}</option>
                  ))}
                </select>
                →
                <select value={String(to)} onChange={(e) => setParams({ to: (e.target as HTMLSelectElement).value })} aria-label="diff to version">
                  {(one.data?.versions ?? []).map((v) => (
                    <option value={String(v.version)}>v{v.version}</option>
                  ))}
                </select>
              </h4>
              {diff.data && <DiffTable changes={diff.data.diff as SchemaChange[]} />}
            </>
          )}
          <h4>Draft</h4>
          {one.data && (
            <div class="actions">
              <button type="button" onClick={() => setDraft(pretty(one.data!.schema))} data-testid="schema-draft-from-latest">
                Start from v{one.data.version}
              </button>
              <span class="hint">or write a JSON Schema below; check it against recent traffic before publishing</span>
            </div>
          )}
          <textarea rows={10} value={draft} onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)} placeholder='{"type": "object", "properties": {…}}' aria-label="draft schema" />
          <div class="actions">
            <input value={owner} onInput={(e) => setOwner((e.target as HTMLInputElement).value)} placeholder="owner team" aria-label="owner" />
            <button type="button" disabled={!draft.trim()} onClick={() => put(true)} data-testid="schema-check">
              Check against recent traffic
            </button>
            <button type="button" disabled={!draft.trim()} onClick={() => put(false)} data-testid="schema-publish">
              Publish
            </button>
          </div>
          <ErrorBox error={error} />
          {report !== null && <ReportSummary report={report as PublishReport} />}
          {report !== null && (
            <details>
              <summary>The whole answer (JSON)</summary>
              <pre data-testid="schema-report">{pretty(report)}</pre>
            </details>
          )}
        </div>
      )}
    </section>
  );
}
