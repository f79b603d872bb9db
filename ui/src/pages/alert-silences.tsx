import { useState } from 'preact/hooks';
import { api, type Who } from '../api.js';
import { time } from '../format.js';
import { ErrorBox, useAction, useLoad } from '../load.js';

/** A matcher as Alertmanager's API has it. */
interface Matcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual: boolean;
}
interface Silence {
  id: string;
  matchers: Matcher[];
  starts_at: string;
  ends_at: string | null;
  comment: string;
  created_by: string;
  recurring: { weekdays: string[]; start_time: string; end_time: string; time_zone: string } | null;
  status: { state: 'active' | 'pending' | 'expired' };
}

/** `name="value"` as amtool writes a matcher (`=`, `!=`, `=~`, `!~`). */
export function matcherText(m: Matcher): string {
  const op = m.isRegex ? (m.isEqual ? '=~' : '!~') : m.isEqual ? '=' : '!=';
  return `${m.name}${op}${JSON.stringify(m.value)}`;
}

/**
 * Matchers written one per line (or separated by commas) in amtool's syntax:
 * `alertname="checkout-errors"`, `severity!=ticket`, `alertname=~"checkout-.*"`, `team!~"web|app"`.
 * A quoted value is read as amtool reads it: `\"` is a quote, `\\` a backslash and `\n` a
 * newline; any other backslash is kept as written (`alertname=~"checkout-\d+"` is the
 * pattern `checkout-\d+`). A comma inside quotes belongs to the value.
 */
export function parseMatchers(src: string): Matcher[] {
  const out: Matcher[] = [];
  for (const part of splitMatchers(src)) {
    const s = part.trim();
    if (!s) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*)$/s.exec(s);
    if (!m) throw new Error(`"${s}" is not a matcher: write name="value", name!="value", name=~"regex" or name!~"regex"`);
    out.push({ name: m[1]!, value: matcherValue(m[3]!.trim(), s), isRegex: m[2]!.includes('~'), isEqual: !m[2]!.startsWith('!') });
  }
  if (out.length === 0) throw new Error('a silence needs at least one matcher, e.g. alertname="checkout-errors"');
  return out;
}

/** The matchers of a list: split at newlines and at commas outside quotes. */
function splitMatchers(src: string): string[] {
  const parts: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (quoted && c === '\\' && i + 1 < src.length) {
      cur += c + src[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === '\n' || (c === ',' && !quoted)) {
      parts.push(cur);
      cur = '';
      quoted = false;
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

/** A matcher's value as amtool unquotes it (Alertmanager's pkg/labels ParseMatcher). */
function matcherValue(raw: string, matcher: string): string {
  const quoted = raw.startsWith('"');
  const body = quoted ? raw.slice(1) : raw;
  let value = '';
  let closed = !quoted;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\' && i < body.length - 1) {
      const next = body[++i]!;
      value += next === 'n' ? '\n' : next === '"' || next === '\\' ? next : `\\${next}`;
    } else if (c === '"') {
      if (!quoted || i < body.length - 1) throw new Error(`"${matcher}": the value has a quote that is not escaped (write \\" inside quotes)`);
      closed = true;
    } else value += c;
  }
  if (!closed) throw new Error(`"${matcher}": the value's closing quote is missing`);
  return value;
}

const inTwoHours = () => new Date(Date.now() + 2 * 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');

/**
 * Silences (`GET /v1/alerts/silences`, read key); with an admin key, create one (matchers,
 * `ends_at`, comment: `POST /v1/alerts/silences`) and expire one (`DELETE
 * /v1/alerts/silences/:id`). Silenced alerts still show above, marked.
 */
export function Silences(props: { who: Who; refreshed: number; onChanged: () => void }) {
  const silences = useLoad((signal) => api<{ silences: Silence[] }>('/v1/alerts/silences', { signal }), [props.refreshed]);
  const admin = props.who.scope === 'admin';
  const [matchers, setMatchers] = useState('');
  const [endsAt, setEndsAt] = useState(inTwoHours);
  const [comment, setComment] = useState('');
  const [done, setDone] = useState<string | null>(null);
  const { error, act: run } = useAction();
  const act = (fn: () => Promise<string>) =>
    run(async () => {
      setDone(null);
      setDone(await fn());
      silences.reload();
      props.onChanged();
    });
  const create = (e: Event) => {
    e.preventDefault();
    void act(async () => {
      const s = await api<Silence>('/v1/alerts/silences', { method: 'POST', body: { matchers: parseMatchers(matchers), ends_at: endsAt.trim(), comment } });
      setMatchers('');
      setComment('');
      return `Silence ${s.id} created.`;
    });
  };
  const expire = (id: string) =>
    act(async () => {
      await api(`/v1/alerts/silences/${encodeURIComponent(id)}`, { method: 'DELETE' });
      return `Silence ${id} expired.`;
    });

  return (
    <div class="panel">
      <h3>Silences</h3>
      <ErrorBox error={silences.error} />
      {silences.data && silences.data.silences.length === 0 && <p class="meta">No silences.</p>}
      <table>
        <thead>
          <tr>
            <th>matchers</th>
            <th>status</th>
            <th>starts</th>
            <th>ends</th>
            <th>comment</th>
            <th>created by</th>
            {admin && <th />}
          </tr>
        </thead>
        <tbody>
          {silences.data?.silences.map((s) => (
            <tr data-testid="silence-row" data-id={s.id}>
              <td class="mono" data-testid="silence-matchers">
                {s.matchers.map(matcherText).join(', ')}
              </td>
              <td data-testid="silence-status">{s.status.state}</td>
              <td>{time(s.starts_at)}</td>
              <td>
                {s.ends_at ? time(s.ends_at) : 'no end'}
                {s.recurring && (
                  <div class="meta">
                    {s.recurring.weekdays.join(', ')} {s.recurring.start_time}–{s.recurring.end_time} {s.recurring.time_zone}
                  </div>
                )}
              </td>
              <td data-testid="silence-comment">{s.comment}</td>
              <td class="mono">{s.created_by}</td>
              {admin && (
                <td>
                  {s.status.state !== 'expired' && (
                    <button type="button" onClick={() => void expire(s.id)} data-testid="silence-expire">
                      Expire
                    </button>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {admin && (
        <form class="builder" onSubmit={create}>
          <label>
            matchers (one per line)
            <textarea rows={2} value={matchers} onInput={(e) => setMatchers((e.target as HTMLTextAreaElement).value)} placeholder={'alertname="checkout-errors"'} data-testid="silence-new-matchers" />
          </label>
          <label>
            ends at (RFC 3339)
            <input value={endsAt} onInput={(e) => setEndsAt((e.target as HTMLInputElement).value)} data-testid="silence-new-ends-at" />
          </label>
          <label>
            comment
            <input value={comment} onInput={(e) => setComment((e.target as HTMLInputElement).value)} placeholder="planned migration" data-testid="silence-new-comment" />
          </label>
          <button type="submit" disabled={!matchers.trim()} data-testid="silence-create">
            Silence
          </button>
        </form>
      )}
      {done && <p data-testid="silence-result">{done}</p>}
      <ErrorBox error={error} />
    </div>
  );
}
