import { useEffect, useRef, useState } from 'preact/hooks';
import { stream } from '../api.js';
import { text, time } from '../format.js';
import { ErrorBox } from '../load.js';
import { navigate, setParams, useRoute } from '../router.js';

interface LiveEvent {
  type: string;
  key: string;
  idempotency_key: string;
  ts: string;
  received_at: string;
  properties: unknown;
}

/** Rows kept on screen, and events kept while paused. */
const MAX_ROWS = 200;

/** `/ui/live?type=&key=`: the SSE tail of the tenant's events, newest first. */
export function Live() {
  const route = useRoute();
  const type = route.params.get('type') ?? '';
  const key = route.params.get('key') ?? '';
  const [rows, setRows] = useState<LiveEvent[]>([]);
  const [paused, setPaused] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [connected, setConnected] = useState(false);
  const held = useRef<LiveEvent[]>([]);
  const [heldCount, setHeldCount] = useState(0);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  const [typeDraft, setTypeDraft] = useState(type);
  const [keyDraft, setKeyDraft] = useState(key);

  useEffect(() => {
    const ctl = new AbortController();
    setRows([]);
    held.current = [];
    setHeldCount(0);
    setError(null);
    setConnected(true);
    stream(
      `/v1/stream${type ? `?type=${encodeURIComponent(type)}` : ''}`,
      (data) => {
        const e = data as LiveEvent;
        if (key && e.key !== key) return;
        if (pausedRef.current) {
          held.current = [e, ...held.current].slice(0, MAX_ROWS);
          setHeldCount(held.current.length);
          return;
        }
        setRows((r) => [e, ...r].slice(0, MAX_ROWS));
      },
      ctl.signal,
    ).then(
      () => setConnected(false),
      (e: unknown) => {
        if (!ctl.signal.aborted) {
          setError((e as Error).message);
          setConnected(false);
        }
      },
    );
    return () => ctl.abort();
  }, [type, key]);

  const resume = () => {
    setRows((r) => [...held.current, ...r].slice(0, MAX_ROWS));
    held.current = [];
    setHeldCount(0);
    setPaused(false);
  };
  return (
    <section>
      <div class="toolbar">
        <h2>Live</h2>
        <span class="meta" data-testid="live-state">
          {connected ? (paused ? `paused (${heldCount} held)` : 'streaming') : 'disconnected'}
        </span>
        <button type="button" data-testid="live-pause" onClick={() => (paused ? resume() : setPaused(true))}>
          {paused ? 'Resume' : 'Pause'}
        </button>
      </div>
      <form
        class="builder"
        onSubmit={(e) => {
          e.preventDefault();
          setParams({ type: typeDraft.trim() || null, key: keyDraft.trim() || null });
        }}
      >
        <label>
          Type
          <input value={typeDraft} onInput={(e) => setTypeDraft((e.target as HTMLInputElement).value)} data-testid="live-type" placeholder="every type" />
        </label>
        <label>
          Key
          <input value={keyDraft} onInput={(e) => setKeyDraft((e.target as HTMLInputElement).value)} data-testid="live-key" placeholder="every key" />
        </label>
        <div class="actions">
          <button type="submit">Filter</button>
        </div>
      </form>
      <ErrorBox error={error} />
      <p class="meta">Events appear once they are durable in the log. Select a row to follow the event.</p>
      <table>
        <thead>
          <tr>
            <th>received</th>
            <th>type</th>
            <th>key</th>
            <th>idempotency key</th>
            <th>properties</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((e) => (
            <tr data-testid="tail-row" class="clickable" onClick={() => navigate(`/ui/events/${encodeURIComponent(e.idempotency_key)}`)}>
              <td>{time(e.received_at)}</td>
              <td>{e.type}</td>
              <td>{e.key}</td>
              <td>{e.idempotency_key}</td>
              <td class="mono">{text(e.properties).slice(0, 200)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
