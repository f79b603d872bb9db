import { isJsonObject } from '../core/event.js';
import { SluiceError } from '../core/errors.js';

/**
 * CloudEvents 1.0 over HTTP (pure), at `POST /v1/cloudevents`, in its three modes:
 * - structured: `Content-Type: application/cloudevents+json`, one event as JSON;
 * - batched: `Content-Type: application/cloudevents-batch+json`, a JSON array of events;
 * - binary: any JSON `Content-Type`, the attributes in `ce-*` headers and the body as `data`.
 *
 * A CloudEvent becomes a sluice event with `type` = `type`, `key` = `subject` (else `source`:
 * an empty key would put every such event of a tenant in one partition and one cohort),
 * `idempotency_key` = `source` + `id` (the pair the spec says identifies an event),
 * `ts` = `time`, `properties` = `data` when it is an object (else `{ "data": … }`), and
 * the remaining attributes (`source`, `id`, `specversion`, `datacontenttype`, `dataschema`,
 * extensions) in `context.cloudevents`.
 *
 * A CloudEvent without its required attributes (specversion 1.0, id, source, type) fails the
 * request with 400 naming the event and the attribute: it is not an event sluice can key.
 */

type Obj = Record<string, unknown>;

export const STRUCTURED = 'application/cloudevents+json';
export const BATCH = 'application/cloudevents-batch+json';

function bad(field: string, message: string): SluiceError {
  return new SluiceError('SLUICE_ERR_INVALID_EVENT', message, { field });
}

/**
 * The producer's field for attribute `attr` of an event sent `where` (see cloudEventPath): a
 * JSON pointer into the body (`/specversion`, `/3/id` in a batch), or the `ce-` header.
 */
function attrField(where: string, attr?: string): string {
  if (where === 'headers') return attr === undefined ? 'headers' : `ce-${attr}`;
  const base = bodyPointer(where);
  return attr === undefined ? base || 'body' : `${base}/${attr}`;
}

/** The JSON pointer to the event sent `where` in the body: "" for a structured event, `/i` in a batch. */
function bodyPointer(where: string): string {
  return where === 'body' ? '' : `/${where.slice(1, -1)}`;
}

/**
 * `source` in the idempotency key `<source>#<id>`: "%" and "#" percent-encoded, so that the
 * first "#" always ends the source (source "urn:a#b" with id "c" and source "urn:a" with id
 * "b#c" were the same key, and the second event was answered as a duplicate and lost). A
 * source without either character is unchanged, so keys of events sent before are too.
 */
export function escapeSource(source: string): string {
  return /[%#]/.test(source) ? source.replace(/%/g, '%25').replace(/#/g, '%23') : source;
}

/** One CloudEvent (attributes and data) as a native event. */
export function fromCloudEvent(ce: unknown, where: string): Obj {
  if (!isJsonObject(ce)) throw bad(attrField(where), `${where} must be a CloudEvent (a JSON object)`);
  if (ce.specversion !== '1.0') throw bad(attrField(where, 'specversion'), `${where}: "specversion" must be "1.0"`);
  for (const attr of ['id', 'source', 'type'] as const) {
    if (typeof ce[attr] !== 'string' || (ce[attr] as string).length === 0) throw bad(attrField(where, attr), `${where}: "${attr}" is required (a non-empty string)`);
  }
  const { id, source, type, subject, time, data, data_base64, ...attributes } = ce;
  let payload: unknown = data;
  if (data_base64 !== undefined) {
    if (typeof data_base64 !== 'string') throw bad(attrField(where, 'data_base64'), `${where}: "data_base64" must be a base64 string`);
    payload = { data_base64 };
  }
  const event: Obj = {
    type,
    key: typeof subject === 'string' && subject !== '' ? subject : (source as string),
    idempotency_key: `${escapeSource(source as string)}#${id as string}`,
    properties: isJsonObject(payload) ? payload : payload === undefined ? {} : { data: payload },
    context: { cloudevents: { id, source, ...attributes } },
  };
  if (time !== undefined) event.ts = time;
  return event;
}

/** The `ce-*` headers of a binary-mode request as attributes (names lower-cased, as the spec says). */
export function binaryAttributes(headers: Record<string, string | string[] | undefined>, contentType: string | undefined): Obj {
  const attrs: Obj = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith('ce-') || value === undefined) continue;
    const v = Array.isArray(value) ? value.join(',') : value;
    // Header values are percent-encoded where they are not printable ASCII.
    let decoded = v;
    try {
      decoded = decodeURIComponent(v);
    } catch {
      // Kept as sent.
    }
    attrs[name.slice(3)] = decoded;
  }
  if (contentType) attrs.datacontenttype = contentType;
  return attrs;
}

export function isJsonMediaType(ct: string): boolean {
  return /^application\/(?:[\w.+-]+\+)?json$/i.test(ct) || ct === 'text/json';
}

/**
 * The producer's own field for a rejection's path in the event a CloudEvent became:
 * `/ts` is `time`, `/key` `subject`, `/idempotency_key` `id`, `/properties/…` `data/…` (or
 * `data` itself when the data was not an object), `/context/cloudevents/x` the attribute `x`.
 * `where` is how the event was sent: `body` (structured), `[i]` (batched) or `headers`
 * (binary, where attributes are `ce-*` headers and data is the body).
 */
export function cloudEventPath(where: string, path: string, dataWasObject: boolean): string {
  const [, head = '', ...rest] = path.split('/');
  let attr: string | null = null;
  let inData: string | null = null;
  switch (head) {
    case 'ts':
      attr = 'time';
      break;
    case 'key':
      attr = 'subject';
      break;
    case 'idempotency_key':
      attr = 'id';
      break;
    case 'type':
      attr = 'type';
      break;
    case 'properties':
      inData = dataWasObject ? rest.map((r) => '/' + r).join('') : '';
      break;
    case 'context':
      if (rest[0] === 'cloudevents' && rest[1] !== undefined) attr = rest[1];
      break;
  }
  if (attr !== null) return attrField(where, attr);
  if (where === 'headers') return inData !== null ? `body${inData}` : path;
  const base = bodyPointer(where);
  return inData !== null ? `${base}/data${inData}` : `${base}${path}`;
}
