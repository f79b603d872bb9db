import { flagContext, isJsonObject } from '../core/event.js';
import { SluiceError } from '../core/errors.js';
import { parseRfc3339 } from '../core/time.js';

/**
 * Segment's HTTP Tracking API, mapped onto sluice events (pure). Any Segment library pointed
 * at sluice (`host`) sends here: `POST /v1/track`, `/v1/identify`, `/v1/page`, `/v1/screen`,
 * `/v1/group`, `/v1/alias` with one call, `/v1/batch` with `{ batch: [calls…], sentAt }`.
 *
 * A call becomes an event with
 * - `type`: the `event` of a track call; `identify`, `page`, `screen`, `group` or `alias` for
 *   the others;
 * - `key`: `userId`, else `anonymousId`;
 * - `idempotency_key`: `messageId` (Segment libraries set one per call and keep it across
 *   retries);
 * - `ts`: `timestamp` (else `originalTimestamp`), corrected for the device's clock skew with
 *   `sentAt`, as native batches are;
 * - `properties`: a track, page or screen call's `properties` (with the page's `name` and
 *   `category`), an identify's `traits`, a group's `traits` and `groupId`, an alias's
 *   `previousId`;
 * - `context`: the call's `context`, with `userId`, `anonymousId`, `originalTimestamp` and
 *   `sentAt` kept in it.
 *
 * Nothing is answered 2xx and lost: a `timestamp` that is not RFC 3339 (an epoch number, a
 * library's malformed string) keeps the event at its receive time, flagged in
 * `context.sluice.ts_unusable`; an unusable `sentAt` skips skew correction, flagged in
 * `context.sluice.sent_at_unusable`; non-object `properties`/`traits` are refused (`[]` is `{}`).
 * `integrations` and the body's `writeKey` are not kept.
 */

export const SEGMENT_KINDS = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export type SegmentKind = (typeof SEGMENT_KINDS)[number];

type Obj = Record<string, unknown>;


function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : typeof v === 'number' ? String(v) : undefined;
}

/** A properties-like field as sent: absent, null and `[]` are `{}`; any other non-object is passed on for the validator to refuse. */
function objectOrAsSent(v: unknown): unknown {
  if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) return {};
  return v;
}

/** The first of `timestamp`, `originalTimestamp` the call carries, with its field name. */
function timestampOf(m: Obj): { field: 'timestamp' | 'originalTimestamp'; value: unknown } | undefined {
  if (m.timestamp !== undefined && m.timestamp !== null) return { field: 'timestamp', value: m.timestamp };
  if (m.originalTimestamp !== undefined && m.originalTimestamp !== null) return { field: 'originalTimestamp', value: m.originalTimestamp };
  return undefined;
}

/** One Segment call as a native event (left for the native validator to judge). */
export function segmentEvent(kind: SegmentKind, m: Obj): Obj {
  const userId = str(m.userId);
  const anonymousId = str(m.anonymousId);
  const props = objectOrAsSent(m.properties);
  const traits = objectOrAsSent(m.traits);
  let type: unknown = kind;
  let properties: unknown;
  switch (kind) {
    case 'track':
      type = m.event;
      properties = props;
      break;
    case 'page':
    case 'screen':
      properties = isJsonObject(props) ? { ...(m.name === undefined ? {} : { name: m.name }), ...(m.category === undefined ? {} : { category: m.category }), ...props } : props;
      break;
    case 'identify':
      properties = traits;
      break;
    case 'group':
      properties = isJsonObject(traits) ? { ...traits, groupId: m.groupId } : traits;
      break;
    case 'alias':
      properties = { previousId: m.previousId };
      break;
  }
  const context: Obj = { ...(isJsonObject(m.context) ? m.context : {}) };
  if (userId !== undefined) context.userId = userId;
  if (anonymousId !== undefined) context.anonymousId = anonymousId;
  // The device's clock as it was, as Segment keeps it.
  if (m.originalTimestamp !== undefined) context.originalTimestamp = m.originalTimestamp instanceof Date ? m.originalTimestamp.toISOString() : m.originalTimestamp;
  if (m.sentAt !== undefined) context.sentAt = m.sentAt instanceof Date ? m.sentAt.toISOString() : m.sentAt;
  const event: Obj = { type, key: userId ?? anonymousId ?? '', properties, context };
  const ts = timestampOf(m);
  if (ts !== undefined) {
    const value = ts.value instanceof Date ? ts.value.toISOString() : ts.value;
    // A time sluice cannot read is not a reason to lose the event (Segment libraries read
    // only the status): it is kept at its receive time, the value flagged in context.sluice.
    if (typeof value === 'string' && parseRfc3339(value) !== null) event.ts = value;
    else context.sluice = { ...(isJsonObject(context.sluice) ? context.sluice : {}), ts_unusable: { field: ts.field, value } };
  }
  if (m.messageId !== undefined) event.idempotency_key = m.messageId;
  return event;
}

/**
 * The producer's own field for a rejection's path in the event a call became: `/ts` is
 * `/timestamp` (or `/originalTimestamp`), `/key` `/userId`, an identify's or group's
 * `/properties/…` `/traits/…`, and so on.
 */
export function segmentPath(kind: SegmentKind, call: unknown, path: string): string {
  const m = isJsonObject(call) ? call : {};
  const [, head = '', ...rest] = path.split('/');
  const tail = rest.length ? '/' + rest.join('/') : '';
  switch (head) {
    case 'type':
      return kind === 'track' ? '/event' : '/type';
    case 'key':
      return m.userId !== undefined ? '/userId' : '/anonymousId';
    case 'idempotency_key':
      return '/messageId';
    case 'ts':
      return `/${timestampOf(m)?.field ?? 'timestamp'}`;
    case 'properties': {
      if (kind === 'identify' || kind === 'group') {
        if (kind === 'group' && rest[0] === 'groupId') return '/groupId' + rest.slice(1).map((r) => '/' + r).join('');
        return '/traits' + tail;
      }
      if (kind === 'alias') return '/previousId';
      if ((kind === 'page' || kind === 'screen') && (rest[0] === 'name' || rest[0] === 'category') && !(isJsonObject(m.properties) && rest[0]! in m.properties)) {
        return '/' + rest.join('/');
      }
      return '/properties' + tail;
    }
    default:
      return path;
  }
}

function sentAtOf(v: unknown): { sentAt?: number; unusable?: unknown } {
  if (v === undefined || v === null) return {};
  const t = typeof v === 'string' ? parseRfc3339(v) : null;
  return t === null ? { unusable: v } : { sentAt: t };
}

/**
 * The events of a Segment request: one call, or `{ batch: [...] }` for `/v1/batch`, and
 * `pathOf(index, path)`, the producer's own field (a JSON pointer into the body) for a
 * rejection at `path` of event `index`. A `sentAt` that is not RFC 3339 skips clock-skew
 * correction, flagged in each event's `context.sluice.sent_at_unusable`.
 */
export function segmentEvents(
  kind: SegmentKind | 'batch',
  body: unknown,
  maxEvents: number,
): { events: unknown[]; sentAt?: number; pathOf: (index: number, path: string) => string } {
  if (!isJsonObject(body)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'a Segment call is a JSON object', { field: 'body' });
  const { sentAt, unusable } = sentAtOf(body.sentAt);
  const flag = (e: unknown) => (unusable === undefined ? e : flagContext(e, 'sent_at_unusable', unusable));
  if (kind !== 'batch') {
    const events = [flag(segmentEvent(kind, body))];
    const pathOf = (_i: number, path: string) => segmentPath(kind, body, path);
    return sentAt === undefined ? { events, pathOf } : { events, sentAt, pathOf };
  }
  if (!Array.isArray(body.batch)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"batch" must be an array of Segment calls', { field: 'batch' });
  if (body.batch.length > maxEvents) {
    throw new SluiceError('SLUICE_ERR_TOO_MANY_EVENTS', `the batch has ${body.batch.length} calls; the limit is ${maxEvents}`, { field: 'batch' });
  }
  const calls = body.batch as unknown[];
  const shared = isJsonObject(body.context) ? body.context : {};
  const events = calls.map((m: unknown, i) => {
    if (!isJsonObject(m)) return m;
    const k = m.type;
    if (typeof k !== 'string' || !(SEGMENT_KINDS as readonly string[]).includes(k)) {
      // Left for the validator: an event without a usable type is rejected with its index.
      return { type: null, key: '', properties: { segmentType: k ?? null, index: i } };
    }
    return flag(segmentEvent(k as SegmentKind, { ...(body.sentAt === undefined ? {} : { sentAt: body.sentAt }), ...m, context: { ...shared, ...(isJsonObject(m.context) ? m.context : {}) } }));
  });
  const pathOf = (i: number, path: string) => {
    const m = calls[i];
    const k = isJsonObject(m) ? m.type : undefined;
    const inner = typeof k === 'string' && (SEGMENT_KINDS as readonly string[]).includes(k) ? segmentPath(k as SegmentKind, m, path) : path === '/type' ? '/type' : path;
    return `/batch/${i}${inner}`;
  };
  return sentAt === undefined ? { events, pathOf } : { events, sentAt, pathOf };
}
