import { readFileSync } from 'node:fs';
import { SluiceError } from '../core/errors.js';
import type { Cell } from '../ports/store.js';
import { callJson, fetchSluice, postJson } from './http-client.js';

/**
 * `sluice query`: the query API from the command line, as tables (or `--json`).
 *
 *   sluice query [--event T] [--from -24h] [--to now] [--interval 1h|none] [--measures count,sum:amount]
 *                [--group-by properties.region] [--filter FIELD:OP[:VALUE]]… [--order-by -count] [--limit N]
 *                [--source raw] [--csv]
 *   sluice query events [--type T] [--key K] [--from] [--to] [--limit 50] [--cursor C]
 *   sluice query event IDEMPOTENCY_KEY            where that event is: stored, dead-lettered, in the log, unknown
 *   sluice query tail [--type T]                  live events as they arrive (Ctrl-C stops)
 *   sluice query views [put NAME FILE.json | show NAME | delete NAME]
 */

export interface QueryTarget {
  url: string;
  key: string;
}

export interface QueryFlags {
  event?: string | undefined;
  type?: string | undefined;
  key?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  interval?: string | undefined;
  measures?: string | undefined;
  'group-by'?: string | undefined;
  filter?: string[] | undefined;
  'order-by'?: string | undefined;
  limit?: string | undefined;
  cursor?: string | undefined;
  source?: string | undefined;
  csv?: boolean | undefined;
  json?: boolean | undefined;
}

type Out = { write(s: string): unknown };

function usage(message: string): never {
  throw new SluiceError('SLUICE_ERR_CONFIG', message);
}

/** `FIELD:OP[:VALUE]`; a value that reads as a number or a boolean is one; `in`/`nin` split on commas. */
export function parseFilterFlag(s: string): { field: string; op: string; value?: unknown } {
  // FIELD may quote a name (`properties["a:b"]`), so a colon inside quotes is not a separator.
  const m = /^((?:[^:"]|"(?:[^"\\]|\\.)*")+):([a-z]+)(?::(.*))?$/.exec(s);
  if (!m) usage(`--filter must be FIELD:OP[:VALUE] (for example properties.region:eq:eu, properties.amount:gt:10, key:in:a,b), got "${s}"`);
  const typed = (v: string): unknown => (v === 'true' ? true : v === 'false' ? false : v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v);
  const [, field, op, raw] = m;
  if (raw === undefined) return op === 'exists' ? { field: fieldFlag(field!), op } : usage(`--filter "${s}" needs a value`);
  return { field: fieldFlag(field!), op: op!, value: op === 'in' || op === 'nin' ? raw.split(',').map(typed) : typed(raw) };
}

/** A bare name is a property, as in measures: `region` is `properties.region`. */
export function fieldFlag(name: string): string {
  const f = name.trim();
  if (/^(?:type|key|pipeline_version)$|^(?:properties|context)[.[]/.test(f)) return f;
  // `["price.eur"]`: a quoted property name.
  return f.startsWith('[') ? `properties${f}` : `properties.${f}`;
}

/** `a,properties["b,c"]` → [`a`, `properties["b,c"]`]: commas inside a quoted name do not split. */
export function splitOutsideQuotes(s: string): string[] {
  return s.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? [];
}

/**
 * Control characters of a value as JSON escapes them (`\u001b`): values are the producers',
 * and a terminal would run an escape sequence (clear the screen, set the title) instead of
 * showing it. Bidirectional overrides (U+202A-U+202E, U+2066-U+2069) too: they reorder how a
 * row reads.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function table(columns: string[], rows: Cell[][]): string {
  const text = rows.map((r) => r.map((v) => printable(v === null ? '-' : typeof v === 'number' && !Number.isInteger(v) ? String(Math.round(v * 1000) / 1000) : String(v))));
  const widths = columns.map((c, i) => Math.max(c.length, ...text.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('');
  return [line(columns), ...text.map(line)].join('\n') + '\n';
}

export async function queryCommand(target: QueryTarget, sub: string | undefined, args: string[], flags: QueryFlags, out: Out, err?: Out): Promise<number> {
  const base = target.url.replace(/\/$/, '');
  const get = (path: string) => callJson('GET', `${base}${path}`, target.key, undefined, { maxAttempts: 3 });
  switch (sub) {
    case undefined: {
      const q: Record<string, unknown> = { from: flags.from ?? '-24h', to: flags.to ?? 'now', interval: flags.interval === 'none' ? null : (flags.interval ?? '1h') };
      if (flags.event) q.event = flags.event;
      if (flags.measures) q.measures = flags.measures.split(',');
      if (flags['group-by']) q.group_by = splitOutsideQuotes(flags['group-by']).map(fieldFlag);
      if (flags.filter?.length) q.filters = flags.filter.map(parseFilterFlag);
      if (flags['order-by']) q.order_by = flags['order-by'].split(',');
      if (flags.limit) q.limit = Number(flags.limit);
      if (flags.source) q.source = flags.source;
      if (flags.csv) {
        const res = await fetchSluice(`${base}/v1/query`, { method: 'POST', headers: { authorization: `Bearer ${target.key}`, accept: 'text/csv' }, body: JSON.stringify(q) });
        if (!res.ok) usage(`${res.status}: ${await res.text()}`);
        out.write(await res.text());
        return 0;
      }
      const body = (await postJson(`${base}/v1/query`, target.key, q, { maxAttempts: 3 })).body as { columns: string[]; rows: Cell[][]; watermark: string; source: string; warnings?: string[] };
      for (const w of body.warnings ?? []) (err ?? process.stderr).write(`warning: ${w}\n`);
      if (flags.json) {
        out.write(JSON.stringify(body) + '\n');
        return 0;
      }
      const plain = body.columns.length === 2 && body.columns[0] === 'bucket' && body.columns[1] === 'count';
      const rows = plain ? body.rows.filter((r) => (r[1] as number) > 0) : body.rows;
      out.write(table(body.columns, rows));
      const total = plain ? `total ${body.rows.reduce((s, r) => s + (r[1] as number), 0)} in ${body.rows.length} buckets (${body.rows.length - rows.length} empty not shown); ` : `${rows.length} row${rows.length === 1 ? '' : 's'}; `;
      out.write(`${total}complete up to ${body.watermark}; from ${body.source}\n`);
      return 0;
    }
    case 'events': {
      const params = new URLSearchParams();
      for (const k of ['type', 'key', 'from', 'to', 'limit', 'cursor'] as const) if (flags[k]) params.set(k, flags[k]!);
      const body = (await get(`/v1/events?${params}`)).body as { events: Record<string, unknown>[]; next_cursor: string | null };
      if (flags.json) out.write(JSON.stringify(body) + '\n');
      else {
        out.write(table(['ts', 'type', 'key', 'idempotency_key', 'properties'], body.events.map((e) => [e.ts as string, e.type as string, e.key as string, e.idempotency_key as string, JSON.stringify(e.properties)])));
        if (body.next_cursor) out.write(`more: --cursor ${body.next_cursor}\n`);
      }
      return 0;
    }
    case 'event': {
      if (args.length !== 1) usage('query event takes one idempotency key');
      const body = (await get(`/v1/events/${encodeURIComponent(args[0]!)}`)).body as { status: string; explanation: string };
      out.write(flags.json ? JSON.stringify(body) + '\n' : `${body.status}: ${body.explanation}\n`);
      return body.status === 'unknown' ? 1 : 0;
    }
    case 'tail': {
      const res = await fetchSluice(`${base}/v1/stream${flags.type ? `?type=${encodeURIComponent(flags.type)}` : ''}`, { headers: { authorization: `Bearer ${target.key}` } });
      if (!res.ok || !res.body) usage(`${res.status}: ${await res.text()}`);
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = frame.split('\n').find((l) => l.startsWith('data: '));
          if (!data) continue;
          const e = JSON.parse(data.slice(6)) as Record<string, unknown>;
          out.write(flags.json ? data.slice(6) + '\n' : `${e.ts}  ${e.type}  ${e.key}  ${JSON.stringify(e.properties)}\n`);
        }
      }
      return 0;
    }
    case 'views': {
      const [action, name, file] = args;
      if (action === undefined) {
        const body = (await get('/v1/views')).body as { views: { name: string; status: string; version: number; definition: Record<string, unknown> }[] };
        if (flags.json) out.write(JSON.stringify(body) + '\n');
        else out.write(table(['name', 'status', 'version', 'event', 'dimensions', 'measures', 'grain'], body.views.map((v) => [v.name, v.status, v.version, String(v.definition.event ?? '*'), String(v.definition.dimensions), String(v.definition.measures), String(v.definition.grain)])));
        return 0;
      }
      if (!name) usage(`query views ${action} needs a view name`);
      const path = `${base}/v1/views/${encodeURIComponent(name)}`;
      if (action === 'put') {
        if (!file) usage('query views put NAME FILE.json: the file holds {event, filters, dimensions, measures, grain}');
        let def: unknown;
        try {
          def = JSON.parse(readFileSync(file, 'utf8')) as unknown;
        } catch (e: unknown) {
          usage(`cannot read the view definition ${file}: ${(e as { code?: string }).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
        }
        const body = (await callJson('PUT', path, target.key, def, { maxAttempts: 3 })).body as { status: string; version: number; build: string | null };
        out.write(flags.json ? JSON.stringify(body) + '\n' : `view ${name} v${body.version}: ${body.status}${body.build ? ` (its build: GET /v1/backfills/${body.build}; sluice query views shows when it is ready)` : ''}\n`);
        return 0;
      }
      if (action === 'show') {
        out.write(JSON.stringify((await callJson('GET', path, target.key, undefined, { maxAttempts: 3 })).body, null, 2) + '\n');
        return 0;
      }
      if (action === 'delete') {
        await callJson('DELETE', path, target.key, undefined, { maxAttempts: 3 });
        out.write(`view ${name} deleted\n`);
        return 0;
      }
      return usage(`query views takes put, show or delete, got "${action}"`);
    }
    default:
      return usage(`query takes events, event, tail or views, got "${sub}"`);
  }
}
