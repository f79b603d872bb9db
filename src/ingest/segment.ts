import { isJsonObject } from '../core/event.js';
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
 * - `context`: the call's `context`, with `userId` and `anonymousId` kept in it.
 * `integrations` and the body's `writeKey` are not kept.
 */

export const SEGMENT_KINDS = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export type SegmentKind = (typeof SEGMENT_KINDS)[number];

type Obj = Record<string, unknown>;


function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : typeof v === 'number' ? String(v) : undefined;
}

/** One Segment call as a native event (left for the native validator to judge). */
export function segmentEvent(kind: SegmentKind, m: Obj): Obj {
  const userId = str(m.userId);
  const anonymousId = str(m.anonymousId);
  const props = isJsonObject(m.properties) ? m.properties : {};
  const traits = isJsonObject(m.traits) ? m.traits : {};
  let type: unknown = kind;
  let properties: Obj;
  switch (kind) {
    case 'track':
      type = m.event;
      properties = props;
      break;
    case 'page':
    case 'screen':
      properties = { ...(m.name === undefined ? {} : { name: m.name }), ...(m.category === undefined ? {} : { category: m.category }), ...props };
      break;
    case 'identify':
      properties = traits;
      break;
    case 'group':
      properties = { ...traits, groupId: m.groupId };
      break;
    case 'alias':
      properties = { previousId: m.previousId };
      break;
  }
  const context: Obj = { ...(isJsonObject(m.context) ? m.context : {}) };
  if (userId !== undefined) context.userId = userId;
  if (anonymousId !== undefined) context.anonymousId = anonymousId;
  const ts = m.timestamp ?? m.originalTimestamp;
  const event: Obj = { type, key: userId ?? anonymousId ?? '', properties, context };
  if (ts !== undefined) event.ts = ts instanceof Date ? ts.toISOString() : ts;
  if (m.messageId !== undefined) event.idempotency_key = m.messageId;
  return event;
}

function sentAtOf(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const t = typeof v === 'string' ? parseRfc3339(v) : null;
  if (t === null) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"${field}" must be an ISO 8601 timestamp`, { field });
  return t;
}

/** The events of a Segment request: one call, or `{ batch: [...] }` for `/v1/batch`. */
export function segmentEvents(kind: SegmentKind | 'batch', body: unknown, maxEvents: number): { events: unknown[]; sentAt?: number } {
  if (!isJsonObject(body)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'a Segment call is a JSON object', { field: 'body' });
  if (kind !== 'batch') {
    const sentAt = sentAtOf(body.sentAt, 'sentAt');
    const events = [segmentEvent(kind, body)];
    return sentAt === undefined ? { events } : { events, sentAt };
  }
  if (!Array.isArray(body.batch)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"batch" must be an array of Segment calls', { field: 'batch' });
  if (body.batch.length > maxEvents) {
    throw new SluiceError('SLUICE_ERR_TOO_MANY_EVENTS', `the batch has ${body.batch.length} calls; the limit is ${maxEvents}`, { field: 'batch' });
  }
  const sentAt = sentAtOf(body.sentAt, 'sentAt');
  const shared = isJsonObject(body.context) ? body.context : {};
  const events = body.batch.map((m: unknown, i) => {
    if (!isJsonObject(m)) return m;
    const k = m.type;
    if (typeof k !== 'string' || !(SEGMENT_KINDS as readonly string[]).includes(k)) {
      // Left for the validator: an event without a usable type is rejected with its index.
      return { type: null, key: '', properties: { segmentType: k ?? null, index: i } };
    }
    return segmentEvent(k as SegmentKind, { ...m, context: { ...shared, ...(isJsonObject(m.context) ? m.context : {}) } });
  });
  return sentAt === undefined ? { events } : { events, sentAt };
}
