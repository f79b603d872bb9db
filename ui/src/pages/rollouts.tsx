import { api } from '../api.js';
import { time } from '../format.js';
import { ErrorBox, useLoad } from '../load.js';
import { setParams, useRoute } from '../router.js';
import { RolloutDetail, changeText, type Rollout } from './rollout-detail.js';

/**
 * `/ui/rollouts` (admin key): the tenant's rollouts with their state and share; `?id=` opens
 * one (its steps, each decision with the numbers behind it, the diff and its samples, and the
 * operator's buttons).
 */
export function Rollouts() {
  const route = useRoute();
  const id = route.params.get('id');
  const list = useLoad((signal) => api<{ rollouts: Rollout[] }>('/v1/rollouts', { signal }), []);
  return (
    <section>
      <div class="toolbar">
        <h2>Rollouts</h2>
        <button type="button" data-testid="rollouts-refresh" onClick={list.reload}>
          Refresh
        </button>
      </div>
      <ErrorBox error={list.error} />
      {list.data && list.data.rollouts.length === 0 && (
        <p class="meta" data-testid="rollouts-empty">
          No rollouts. Start one with POST /v1/rollouts or sluice rollout create.
        </p>
      )}
      {list.data && list.data.rollouts.length > 0 && (
        <table data-testid="rollouts-list">
          <thead>
            <tr>
              <th>rollout</th>
              <th>change</th>
              <th>state</th>
              <th>share</th>
              <th>created</th>
              <th>updated</th>
            </tr>
          </thead>
          <tbody>
            {list.data.rollouts.map((r) => (
              <tr data-testid="rollout-row" data-id={r.id} class={`clickable${r.id === id ? ' active' : ''}`} onClick={() => setParams({ id: r.id })}>
                <td class="mono">{r.id}</td>
                <td>{changeText(r.change)}</td>
                <td data-testid="rollout-row-state">{r.state}</td>
                <td class="num" data-testid="rollout-row-share">
                  {r.share} %
                </td>
                <td>{time(r.created_at)}</td>
                <td>{time(r.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {id && <RolloutDetail id={id} onChanged={list.reload} />}
    </section>
  );
}
