import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { num, pretty, time } from '../format.js';
import { ErrorBox, useAction, useLoad } from '../load.js';
import { navigate, setParams, useRoute } from '../router.js';
import { Workbench, type GroupLifecycle } from './dlq-workbench.js';

interface Entry {
  idempotency_key: string;
  type: string;
  reason: string;
  message: string;
  status: string;
  attempts: number;
  last_seen: string;
  payload: unknown;
}
interface Group extends GroupLifecycle {
  group: string;
  reason: string;
  path: string;
  template: string;
  count: number;
  types: string[];
  first_seen: string;
  last_seen: string;
  samples: Entry[];
}
interface Report {
  matched: number;
  replayed: number;
  duplicates: number;
  failed: number;
  skipped: number;
  dry_run: boolean;
  cursor: string | null;
}

/**
 * `/ui/dlq?group=<signature>&patch=<steps>`: dead letters grouped by error signature; replay
 * and discard (admin), and the workbench of the selected group (its lifecycle, a patch
 * tested on the samples, predicted over the group and replayed).
 */
export function DeadLetters() {
  const route = useRoute();
  const group = route.params.get('group');
  const groups = useLoad((signal) => api<{ groups: Group[] }>('/v1/dlq/groups?limit=100', { signal }), []);
  const entries = useLoad(async (signal) => (group ? api<{ entries: Entry[] }>(`/v1/dlq?group=${encodeURIComponent(group)}&limit=100`, { signal }) : null), [group]);
  const [preview, setPreview] = useState<Report | null>(null);
  const [result, setResult] = useState<string | null>(null);
  const [rate, setRate] = useState('100');
  const [why, setWhy] = useState('');
  const { error, act } = useAction();
  const selected = groups.data?.groups.find((g) => g.group === group) ?? null;

  const dryRun = () =>
    act(async () => {
      setResult(null);
      setPreview(await api<Report>('/v1/dlq/replay', { method: 'POST', body: { group, dry_run: true, limit: 10_000 } }));
    });
  const replay = () =>
    act(async () => {
      const r = await api<Report>('/v1/dlq/replay', { method: 'POST', body: { group, rate: Number(rate) || 0, limit: 10_000 } });
      setPreview(null);
      setResult(`Replayed ${num(r.replayed)}, duplicates ${num(r.duplicates)}, failed again ${num(r.failed)}, skipped ${num(r.skipped)}.`);
      groups.reload();
      entries.reload();
    });
  const discard = () =>
    act(async () => {
      const r = await api<{ discarded: number }>('/v1/dlq/discard', { method: 'POST', body: { group, reason_for_discard: why } });
      setResult(`Discarded ${num(r.discarded)}.`);
      setWhy('');
      groups.reload();
      entries.reload();
    });

  return (
    <section>
      <h2>Dead letters</h2>
      <ErrorBox error={groups.error} />
      {groups.data && groups.data.groups.length === 0 && <p class="meta">No open dead letters.</p>}
      <div class="groups">
        {groups.data?.groups.map((g) => (
          <div
            class={`group ${g.group === group ? 'active' : ''}`}
            data-testid="dlq-group"
            onClick={() => {
              setPreview(null);
              setResult(null);
              setParams({ group: g.group });
            }}
          >
            <div class="count" data-testid="dlq-group-count">
              {g.count}
            </div>
            <div>
              <div>
                <strong>{g.reason}</strong> {g.path && <span class="mono">{g.path}</span>}
              </div>
              <div class="mono small">{g.template}</div>
              <div class="meta">
                <span data-testid="dlq-group-state">{g.status}</span>
                {g.owner ? ` · owner ${g.owner}` : ''} · types: {g.types.join(', ')} · first {time(g.first_seen)} · last {time(g.last_seen)}
              </div>
            </div>
          </div>
        ))}
      </div>
      {result && <p data-testid="dlq-result">{result}</p>}
      {selected && (
        <div class="panel">
          <h3>
            Group <span class="mono">{selected.group}</span>
          </h3>
          <div class="actions">
            <button type="button" onClick={dryRun} data-testid="dlq-dry-run">
              Preview replay (dry run)
            </button>
            {preview && (
              <>
                <span data-testid="dlq-preview">{num(preview.matched)} entries would be replayed.</span>
                <label class="inline">
                  at
                  <input type="number" min="0" value={rate} onInput={(e) => setRate((e.target as HTMLInputElement).value)} aria-label="rate" /> events/s (0: no cap)
                </label>
                <button type="button" onClick={replay} data-testid="dlq-replay">
                  Replay {num(preview.matched)}
                </button>
              </>
            )}
          </div>
          <div class="actions">
            <input value={why} onInput={(e) => setWhy((e.target as HTMLInputElement).value)} placeholder="Why discard? (kept in the audit log)" aria-label="reason for discard" />
            <button type="button" disabled={!why.trim()} onClick={discard} data-testid="dlq-discard">
              Discard group
            </button>
          </div>
          <Workbench
            key={selected.group}
            group={selected}
            samples={entries.data?.entries ?? selected.samples}
            onChanged={(message) => {
              if (message) setResult(message);
              groups.reload();
              entries.reload();
            }}
          />
          <ErrorBox error={error} />
          <ErrorBox error={entries.error} />
          <table>
            <thead>
              <tr>
                <th>idempotency key</th>
                <th>type</th>
                <th>message</th>
                <th>attempts</th>
                <th>last seen</th>
                <th>payload</th>
              </tr>
            </thead>
            <tbody>
              {entries.data?.entries.map((e) => (
                <tr data-testid="dlq-entry" class="clickable" onClick={() => navigate(`/ui/events/${encodeURIComponent(e.idempotency_key)}`)}>
                  <td class="mono">{e.idempotency_key}</td>
                  <td>{e.type}</td>
                  <td>{e.message}</td>
                  <td class="num">{e.attempts}</td>
                  <td>{time(e.last_seen)}</td>
                  <td class="mono">{pretty(e.payload).slice(0, 300)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
