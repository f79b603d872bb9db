import { useState } from 'preact/hooks';
import { api, type Who } from '../api.js';
import { num, time } from '../format.js';
import { ErrorBox, useAction, useLoad } from '../load.js';

interface Tenant {
  tenant: string;
  settings: { unknownTypes: string; quota: { eventsPerSecond?: number; bytesPerSecond?: number; backlog?: number }; paused: { since: number; reason: string } | null };
}
interface Key {
  id: string;
  scope: string;
  team: string | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

const QUOTAS = [
  { field: 'events_per_second', setting: 'eventsPerSecond', label: 'Quota, events/s' },
  { field: 'bytes_per_second', setting: 'bytesPerSecond', label: 'Quota, bytes/s' },
  { field: 'backlog', setting: 'backlog', label: 'Quota, backlog (events)' },
] as const;

/** `/ui/settings` (admin key): quotas, unknown-type policy, pause/resume, keys. */
export function Settings(props: { who: Who }) {
  const tenant = useLoad((signal) => api<Tenant>('/v1/tenant', { signal }), []);
  const keys = useLoad((signal) => api<{ keys: Key[] }>('/v1/keys', { signal }), []);
  const { error, act } = useAction();
  const [secret, setSecret] = useState<string | null>(null);
  const [scope, setScope] = useState('read');
  const [team, setTeam] = useState('');
  const [quota, setQuota] = useState<Record<string, string>>({});
  const s = tenant.data?.settings;
  return (
    <section>
      <h2>Settings</h2>
      <ErrorBox error={tenant.error ?? error} />
      {s && (
        <div class="panel">
          <h3>Tenant {tenant.data!.tenant}</h3>
          <div class="actions">
            <label class="inline">
              Unknown event types
              <select
                value={s.unknownTypes}
                data-testid="unknown-types"
                onChange={(e) =>
                  act(async () => {
                    await api('/v1/tenant', { method: 'PATCH', body: { unknown_types: (e.target as HTMLSelectElement).value } });
                    tenant.reload();
                  })
                }
              >
                <option value="accept">accept</option>
                <option value="dead-letter">dead-letter</option>
                <option value="reject">reject</option>
              </select>
            </label>
          </div>
          {QUOTAS.map((q) => (
            <div class="actions">
              <span>
                {q.label}: {s.quota[q.setting] === undefined || s.quota[q.setting] === null ? 'the default' : s.quota[q.setting] === 0 ? 'unlimited' : num(s.quota[q.setting]!)}
              </span>
              <input type="number" min="0" value={quota[q.field] ?? ''} onInput={(e) => setQuota({ ...quota, [q.field]: (e.target as HTMLInputElement).value })} placeholder="0: unlimited" aria-label={q.label} />
              <button
                type="button"
                disabled={!quota[q.field]}
                onClick={() =>
                  act(async () => {
                    await api('/v1/tenant', { method: 'PATCH', body: { [q.field]: Number(quota[q.field]) } });
                    setQuota({ ...quota, [q.field]: '' });
                    tenant.reload();
                  })
                }
              >
                Set
              </button>
            </div>
          ))}
          <div class="actions">
            <span data-testid="paused">{s.paused ? `Paused since ${time(s.paused.since)}: ${s.paused.reason}` : 'Flowing'}</span>
            <button
              type="button"
              onClick={() =>
                act(async () => {
                  await api(`/v1/tenant/${s.paused ? 'resume' : 'pause'}`, { method: 'POST', body: {} });
                  tenant.reload();
                })
              }
            >
              {s.paused ? 'Resume' : 'Pause'}
            </button>
          </div>
        </div>
      )}
      <div class="panel">
        <h3>Keys</h3>
        <ErrorBox error={keys.error} />
        <table data-testid="keys">
          <thead>
            <tr>
              <th>id</th>
              <th>scope</th>
              <th>team</th>
              <th>created</th>
              <th>last used</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {keys.data?.keys.map((k) => (
              <tr data-testid="key-row" class={k.revoked_at ? 'revoked' : ''}>
                <td class="mono">{k.id}</td>
                <td>{k.scope}</td>
                <td>{k.team ?? ''}</td>
                <td>{time(k.created_at)}</td>
                <td>{time(k.last_used_at)}</td>
                <td>
                  {k.revoked_at ? (
                    `revoked ${time(k.revoked_at)}`
                  ) : k.id === props.who.key_id ? (
                    'this key'
                  ) : (
                    <button
                      type="button"
                      onClick={() =>
                        act(async () => {
                          await api(`/v1/keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' });
                          keys.reload();
                        })
                      }
                    >
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <div class="actions">
          <select value={scope} onChange={(e) => setScope((e.target as HTMLSelectElement).value)} aria-label="scope">
            <option value="write">write</option>
            <option value="read">read</option>
            <option value="admin">admin</option>
            <option value="schema">schema</option>
          </select>
          {scope === 'schema' && <input value={team} onInput={(e) => setTeam((e.target as HTMLInputElement).value)} placeholder="team" aria-label="team" />}
          <button
            type="button"
            data-testid="key-create"
            onClick={() =>
              act(async () => {
                const r = await api<{ key: string }>('/v1/keys', { method: 'POST', body: { scope, ...(scope === 'schema' ? { team } : {}) } });
                setSecret(r.key);
                keys.reload();
              })
            }
          >
            Create key
          </button>
        </div>
        {secret && (
          <p class="secret">
            The new key, shown this once (copy it now): <code data-testid="key-secret">{secret}</code>{' '}
            <button type="button" onClick={() => setSecret(null)}>
              Done
            </button>
          </p>
        )}
      </div>
    </section>
  );
}
