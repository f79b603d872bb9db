import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { num, pretty, time } from '../format.js';
import { ErrorBox, useAction } from '../load.js';
import { setParams, useRoute } from '../router.js';

/** A group's lifecycle as GET /v1/dlq/groups gives it. */
export interface GroupLifecycle {
  group: string;
  status: 'open' | 'acknowledged' | 'resolved' | 'ignored';
  owner: string | null;
  history: { at: string; actor: string; status: string; owner: string | null; note: string | null }[];
}

interface TestResult {
  output: unknown;
  outcome: 'stored' | 'dropped' | 'dead_lettered';
  reason?: string;
  message?: string;
  changed: string[];
}
interface WouldFail {
  reason: string;
  field: string;
  count: number;
  samples: { idempotency_key: string; message: string }[];
}
interface DryRun {
  matched: number;
  would_pass?: number;
  would_fail?: WouldFail[];
}
interface ReplayReport {
  matched: number;
  replayed: number;
  duplicates: number;
  failed: number;
  skipped: number;
  resolved_groups?: string[];
}

/** The moves the lifecycle has from each status (src/core/dlq-lifecycle.ts). */
const MOVES: Record<GroupLifecycle['status'], GroupLifecycle['status'][]> = {
  open: ['acknowledged', 'resolved', 'ignored'],
  acknowledged: ['open', 'resolved', 'ignored'],
  resolved: ['open'],
  ignored: ['open'],
};
const VERB: Record<GroupLifecycle['status'], string> = { open: 'Reopen', acknowledged: 'Acknowledge', resolved: 'Resolve', ignored: 'Ignore' };

const EXAMPLE = '{"steps": [\n  {"cast": {"field": "properties.amount", "to": "number"}}\n]}';

/**
 * The dead-letter workbench of one group: its lifecycle (status, owner, history), and the
 * path from samples to a fix: write a patch (pipeline steps), test it on the samples
 * (POST /v1/pipeline/test, nothing written), predict the whole group (a dry run of the
 * replay with the patch), replay it with the patch, and watch the group shrink. The patch
 * is kept in the URL (`patch`), like every other state of the console.
 */
export function Workbench(props: { group: GroupLifecycle & { count: number }; samples: { payload: unknown }[]; onChanged: (message?: string) => void }) {
  const { group } = props;
  const route = useRoute();
  const [patch, setPatch] = useState(route.params.get('patch') ?? EXAMPLE);
  const [owner, setOwner] = useState(group.owner ?? '');
  const [note, setNote] = useState('');
  const [tested, setTested] = useState<TestResult[] | null>(null);
  const [predicted, setPredicted] = useState<DryRun | null>(null);
  const [replayed, setReplayed] = useState<ReplayReport | null>(null);
  const { error, act } = useAction();

  /** The patch as JSON, or an error shown to the user; "" means no patch. */
  const parsed = (): { steps: unknown[] } | null => {
    if (patch.trim() === '') return null;
    try {
      return JSON.parse(patch) as { steps: unknown[] };
    } catch (e: unknown) {
      throw new Error(`the patch is not JSON: ${(e as Error).message}`);
    }
  };
  const keep = () => setParams({ patch: patch.trim() === '' ? null : patch }, true);

  const move = (status: GroupLifecycle['status']) =>
    act(async () => {
      await api(`/v1/dlq/groups/${encodeURIComponent(group.group)}`, { method: 'PATCH', body: { status, owner: owner.trim() || null, ...(note.trim() ? { note: note.trim() } : {}) } });
      setNote('');
      props.onChanged();
    });
  const test = () =>
    act(async () => {
      keep();
      const p = parsed() ?? { steps: [] };
      const events = props.samples.slice(0, 20).map((s) => s.payload);
      setTested((await api<{ results: TestResult[] }>('/v1/pipeline/test', { method: 'POST', body: { pipeline: p, events } })).results);
    });
  const dryRun = () =>
    act(async () => {
      keep();
      setReplayed(null);
      setPredicted(await api<DryRun>('/v1/dlq/replay', { method: 'POST', body: { group: group.group, dry_run: true, patch: parsed() } }));
    });
  const replay = () =>
    act(async () => {
      const r = await api<ReplayReport>('/v1/dlq/replay', { method: 'POST', body: { group: group.group, patch: parsed(), limit: 10_000 } });
      setReplayed(r);
      setPredicted(null);
      const resolved = (r.resolved_groups ?? []).includes(group.group);
      props.onChanged(`Replayed ${num(r.replayed)} with the patch, duplicates ${num(r.duplicates)}, failed again ${num(r.failed)}${resolved ? '; the group is resolved' : ''}.`);
    });

  return (
    <div class="panel" data-testid="dlq-workbench">
      <h3>Workbench</h3>
      <div class="actions">
        <span>
          status <strong data-testid="dlq-group-status">{group.status}</strong>
        </span>
        <label class="inline">
          owner
          <input value={owner} onInput={(e) => setOwner((e.target as HTMLInputElement).value)} aria-label="owner" data-testid="dlq-owner" />
        </label>
        <input value={note} onInput={(e) => setNote((e.target as HTMLInputElement).value)} placeholder="Note (kept in the group's history)" aria-label="note" />
        {MOVES[group.status].map((s) => (
          <button type="button" onClick={() => move(s)} data-testid={`dlq-move-${s}`}>
            {VERB[s]}
          </button>
        ))}
      </div>
      {group.history.length > 0 && (
        <ol class="meta small" data-testid="dlq-history">
          {group.history.map((h) => (
            <li>
              {time(h.at)} · {h.actor} · {h.status}
              {h.owner ? ` · owner ${h.owner}` : ''}
              {h.note ? ` · ${h.note}` : ''}
            </li>
          ))}
        </ol>
      )}
      <label>
        Patch: pipeline steps applied to each entry before it is validated again (the same document as <span class="mono">PUT /v1/pipeline</span>)
        <textarea rows={6} value={patch} onInput={(e) => setPatch((e.target as HTMLTextAreaElement).value)} data-testid="dlq-patch" aria-label="patch" />
      </label>
      <div class="actions">
        <button type="button" onClick={test} data-testid="dlq-patch-test">
          Test on the samples
        </button>
        <button type="button" onClick={dryRun} data-testid="dlq-patch-dry-run">
          Predict the whole group (dry run)
        </button>
        {predicted && (
          <button type="button" onClick={replay} data-testid="dlq-patch-replay">
            Replay {num(predicted.would_pass ?? predicted.matched)} with the patch
          </button>
        )}
      </div>
      <ErrorBox error={error} />
      {predicted && (
        <div data-testid="dlq-prediction">
          <p>
            Of {num(predicted.matched)} entries, <strong data-testid="dlq-would-pass">{num(predicted.would_pass ?? 0)}</strong> would pass.
          </p>
          {(predicted.would_fail ?? []).length > 0 && (
            <table>
              <thead>
                <tr>
                  <th>would fail: reason</th>
                  <th>field</th>
                  <th>count</th>
                  <th>sample</th>
                </tr>
              </thead>
              <tbody>
                {predicted.would_fail!.map((f) => (
                  <tr data-testid="dlq-would-fail">
                    <td>{f.reason}</td>
                    <td class="mono">{f.field}</td>
                    <td class="num">{num(f.count)}</td>
                    <td class="small">{f.samples[0]?.message ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
      {replayed && (
        <p data-testid="dlq-patch-result">
          Replayed {num(replayed.replayed)}, duplicates {num(replayed.duplicates)}, failed again {num(replayed.failed)}
          {(replayed.resolved_groups ?? []).includes(group.group) ? '; the group is resolved.' : '.'}
        </p>
      )}
      {tested && (
        <table data-testid="dlq-patch-tested">
          <thead>
            <tr>
              <th>outcome</th>
              <th>changed</th>
              <th>output</th>
            </tr>
          </thead>
          <tbody>
            {tested.map((t) => (
              <tr data-testid="dlq-patch-sample">
                <td>{t.outcome === 'dead_lettered' ? `dead-lettered: ${t.reason ?? ''} ${t.message ?? ''}` : t.outcome}</td>
                <td class="mono">{t.changed.join(', ')}</td>
                <td class="mono">{t.output === null ? '' : pretty(t.output).slice(0, 300)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
