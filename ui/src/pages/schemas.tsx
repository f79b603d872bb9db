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
              <pre data-testid="schema-diff">{diff.data ? pretty(diff.data.diff) : ''}</pre>
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
          {report !== null && <pre data-testid="schema-report">{pretty(report)}</pre>}
        </div>
      )}
    </section>
  );
}
