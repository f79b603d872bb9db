import { useEffect } from 'preact/hooks';
import { api } from '../api.js';
import { pretty, time } from '../format.js';
import { ErrorBox, useLoad } from '../load.js';

interface Lineage {
  idempotency_key: string;
  status: 'stored' | 'dead_lettered' | 'in_log' | 'unknown';
  explanation: string;
  stored: { type: string; key: string; ts: string; received_at: string; stored_at: string; partition: number; offset: number; origin: string; properties: unknown; context: unknown } | null;
  dead_letter: { type: string; reason: string; message: string; path: string; attempts: number; partition: number; offset: number; status: string; first_seen: string; last_seen: string; payload: unknown } | null;
}

/** `/ui/events/:idempotency_key`: where one event is, and its payload. */
export function EventPage(props: { id: string }) {
  const r = useLoad((signal) => api<Lineage>(`/v1/events/${encodeURIComponent(props.id)}`, { signal }), [props.id]);
  const e = r.data;
  // An event on its way (in the log, not yet stored) is followed until it lands.
  useEffect(() => {
    if (e?.status !== 'in_log') return;
    const t = setTimeout(r.reload, 1_000);
    return () => clearTimeout(t);
  }, [e]);
  return (
    <section>
      <h2>
        Event <span class="mono">{props.id}</span>
      </h2>
      <ErrorBox error={r.error} />
      {e && (
        <>
          <p>
            Status: <strong data-testid="event-status" class={`status ${e.status}`}>{e.status}</strong>
          </p>
          <p data-testid="event-explanation">{e.explanation}</p>
          <ol class="journey">
            {e.stored && (
              <>
                <li>received at {time(e.stored.received_at)} (event time {time(e.stored.ts)})</li>
                <li>
                  in the log at partition {e.stored.partition}, offset {e.stored.offset}
                </li>
                <li>stored at {time(e.stored.stored_at)} ({e.stored.origin})</li>
              </>
            )}
            {e.dead_letter && (
              <>
                <li>
                  in the log at partition {e.dead_letter.partition}, offset {e.dead_letter.offset}
                </li>
                <li>
                  dead-lettered ({e.dead_letter.status}) after {e.dead_letter.attempts} attempts: <span data-testid="dead-letter-reason">{e.dead_letter.reason}</span>: {e.dead_letter.message}
                  {e.dead_letter.path ? ` at ${e.dead_letter.path}` : ''}
                </li>
              </>
            )}
          </ol>
          {(e.stored || e.dead_letter) && (
            <>
              <h3>Payload</h3>
              <pre data-testid="event-payload">{pretty(e.stored ? { type: e.stored.type, key: e.stored.key, properties: e.stored.properties, context: e.stored.context } : e.dead_letter!.payload)}</pre>
            </>
          )}
        </>
      )}
    </section>
  );
}
