import { isJsonObject } from '../core/event.js';
import { SluiceError } from '../core/errors.js';

/**
 * CloudEvents 1.0 over HTTP (pure), at `POST /v1/cloudevents`, in its three modes:
 * - structured: `Content-Type: application/cloudevents+json`, one event as JSON;
 * - batched: `Content-Type: application/cloudevents-batch+json`, a JSON array of events;
 * - binary: any JSON `Content-Type`, the attributes in `ce-*` headers and the body as `data`.
 *
 * A CloudEvent becomes a sluice event with `type` = `type`, `key` = `subject`,
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

/** One CloudEvent (attributes and data) as a native event. */
export function fromCloudEvent(ce: unknown, where: string): Obj {
  if (!isJsonObject(ce)) throw bad(where, `${where} must be a CloudEvent (a JSON object)`);
  if (ce.specversion !== '1.0') throw bad(`${where}.specversion`, `${where}: "specversion" must be "1.0"`);
  for (const attr of ['id', 'source', 'type'] as const) {
    if (typeof ce[attr] !== 'string' || (ce[attr] as string).length === 0) throw bad(`${where}.${attr}`, `${where}: "${attr}" is required (a non-empty string)`);
  }
  const { id, source, type, subject, time, data, data_base64, ...attributes } = ce;
  let payload: unknown = data;
  if (data_base64 !== undefined) {
    if (typeof data_base64 !== 'string') throw bad(`${where}.data_base64`, `${where}: "data_base64" must be a base64 string`);
    payload = { data_base64 };
  }
  const event: Obj = {
    type,
    key: typeof subject === 'string' ? subject : '',
    idempotency_key: `${source as string}#${id as string}`,
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
