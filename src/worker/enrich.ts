import { isIP } from 'node:net';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import UAParser from 'ua-parser-js';
import { coerceError, isNonRetryable, RetryAfterError } from '../core/errors.js';
import type { LogRecord } from '../core/types.js';

/**
 * The enrich stage of the worker: built-in enrichers (IP anonymisation, user-agent parsing)
 * and custom ones loaded from config, applied to a batch before it is committed.
 *
 * A custom enricher is a module whose default export is an `Enricher` (or a function of its
 * options returning one):
 *
 *   export default (options) => ({
 *     name: 'geo',
 *     async enrich(batch, ctx) {
 *       return batch.map((e) => ({ ok: true, context: { ...e.context, country: lookup(e.context.ip) } }));
 *     },
 *   });
 *
 * It returns one result per event, in order. `{ ok: false, permanent: true }` dead-letters
 * that event (reason `enrich_failed`, with the message); `{ ok: false, permanent: false }`,
 * or throwing, retries the whole batch with backoff (a transient failure: a lookup service
 * down); throwing a NonRetryableError fails every event of the batch permanently.
 */

export interface EnrichEvent {
  tenant: string;
  type: string;
  key: string;
  idempotencyKey: string;
  /** Event time and receive time, epoch ms. */
  ts: number;
  receivedAt: number;
  properties: Record<string, unknown>;
  context: Record<string, unknown>;
}

export type EnrichResult =
  | { ok: true; properties?: Record<string, unknown>; context?: Record<string, unknown> }
  | { ok: false; permanent: boolean; message: string };

export interface EnrichContext {
  /** Aborted when the worker stops: give up and throw. */
  signal: AbortSignal;
}

export interface Enricher {
  name: string;
  enrich(batch: readonly EnrichEvent[], ctx: EnrichContext): EnrichResult[] | Promise<EnrichResult[]>;
}

export interface EnrichOptions {
  anonymizeIp: boolean;
  userAgent: boolean;
  plugins: readonly Enricher[];
}

/** Zeroes the host part: the last octet of IPv4, the last 80 bits of IPv6 (as Google Analytics does). */
export function anonymizeIp(ip: string): string | null {
  const kind = isIP(ip);
  if (kind === 4) return ip.replace(/\.\d+$/, '.0');
  if (kind === 6) {
    const [head, tail] = ip.split('::') as [string, string | undefined];
    const groups = head ? head.split(':') : [];
    const rest = tail !== undefined ? (tail ? tail.split(':') : []) : [];
    const full = tail !== undefined ? [...groups, ...new Array(Math.max(0, 8 - groups.length - rest.length)).fill('0'), ...rest] : groups;
    if (full.some((g) => g.includes('.'))) return null; // IPv4-mapped: rare, drop rather than leak.
    return `${full.slice(0, 3).join(':')}::`;
  }
  return null;
}

const uaParser = new UAParser();

/** `context.user_agent` (or Segment's `context.userAgent`) parsed into `context.ua` (browser, os, device); null when there is nothing to parse. */
export function parseUserAgent(ua: string): Record<string, unknown> | null {
  uaParser.setUA(ua.slice(0, 1024));
  const r = uaParser.getResult();
  const clean = (o: Record<string, string | undefined>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const out: Record<string, unknown> = {};
  if (r.browser.name) out.browser = clean({ name: r.browser.name, version: r.browser.version, major: r.browser.major });
  if (r.os.name) out.os = clean({ name: r.os.name, version: r.os.version });
  if (r.device.type || r.device.vendor) out.device = clean({ type: r.device.type, vendor: r.device.vendor, model: r.device.model });
  if (r.engine.name) out.engine = clean({ name: r.engine.name, version: r.engine.version });
  return Object.keys(out).length > 0 ? out : null;
}

/** The built-in enrichers on one context; returns the new context, or null when nothing changed. */
function builtIns(context: string, opts: EnrichOptions): Record<string, unknown> | null {
  // Parsing every context costs; most have neither field.
  const hasIp = opts.anonymizeIp && context.includes('"ip"');
  // Segment's libraries send `userAgent` (camelCase); sluice's SDK and docs `user_agent`.
  const hasUa = opts.userAgent && (context.includes('"user_agent"') || context.includes('"userAgent"'));
  if (!hasIp && !hasUa) return null;
  const ctx = JSON.parse(context) as Record<string, unknown>;
  let changed = false;
  if (hasIp && typeof ctx.ip === 'string') {
    const masked = anonymizeIp(ctx.ip);
    if (masked !== ctx.ip) {
      if (masked === null) delete ctx.ip;
      else ctx.ip = masked;
      changed = true;
    }
  }
  const userAgent = typeof ctx.user_agent === 'string' ? ctx.user_agent : typeof ctx.userAgent === 'string' ? ctx.userAgent : undefined;
  if (hasUa && userAgent !== undefined && ctx.ua === undefined) {
    const ua = parseUserAgent(userAgent);
    if (ua) {
      ctx.ua = ua;
      changed = true;
    }
  }
  return changed ? ctx : null;
}

export interface Enriched {
  records: LogRecord[];
  failed: { record: LogRecord; message: string }[];
}

/**
 * Enriches a batch. Transient plugin failures throw RetryAfterError (the caller retries the
 * batch); permanent ones come back in `failed`.
 */
export async function enrich(records: readonly LogRecord[], opts: EnrichOptions, signal: AbortSignal): Promise<Enriched> {
  let out: LogRecord[] = records.map((r) => {
    const ctx = builtIns(r.context, opts);
    return ctx ? { ...r, context: JSON.stringify(ctx) } : r;
  });
  const failed: Enriched['failed'] = [];
  for (const plugin of opts.plugins) {
    if (out.length === 0) break;
    const events: EnrichEvent[] = out.map((r) => ({
      tenant: r.tenant,
      type: r.type,
      key: r.key,
      idempotencyKey: r.idempotencyKey,
      ts: r.ts,
      receivedAt: r.receivedAt,
      properties: JSON.parse(r.properties) as Record<string, unknown>,
      context: JSON.parse(r.context) as Record<string, unknown>,
    }));
    let results: EnrichResult[];
    try {
      results = await plugin.enrich(events, { signal });
    } catch (e: unknown) {
      const err = coerceError(e);
      if (isNonRetryable(e)) results = events.map(() => ({ ok: false, permanent: true, message: err.message }));
      else throw new RetryAfterError(`enricher ${plugin.name} failed: ${err.message}`, 1_000, { cause: err });
    }
    if (!Array.isArray(results) || results.length !== events.length) {
      throw new RetryAfterError(`enricher ${plugin.name} returned ${Array.isArray(results) ? results.length : 'no'} results for ${events.length} events`, 1_000);
    }
    const next: LogRecord[] = [];
    for (let i = 0; i < out.length; i++) {
      const r = results[i]!;
      if (r.ok) {
        next.push({
          ...out[i]!,
          ...(r.properties ? { properties: JSON.stringify(r.properties) } : {}),
          ...(r.context ? { context: JSON.stringify(r.context) } : {}),
        });
      } else if (r.permanent) failed.push({ record: out[i]!, message: `${plugin.name}: ${r.message}` });
      else throw new RetryAfterError(`enricher ${plugin.name}: ${r.message}`, 1_000);
    }
    out = next;
  }
  return { records: out, failed };
}

/** Loads the custom enrichers named in config, relative to the working directory. */
export async function loadEnrichers(specs: readonly { module: string; options: Record<string, unknown> }[]): Promise<Enricher[]> {
  const out: Enricher[] = [];
  for (const spec of specs) {
    const url = /^[./]/.test(spec.module) ? pathToFileURL(path.resolve(spec.module)).href : spec.module;
    const mod = (await import(url)) as { default?: unknown };
    const exported = typeof mod.default === 'function' ? (mod.default as (o: unknown) => unknown)(spec.options) : mod.default;
    const e = exported as Partial<Enricher> | undefined;
    if (!e || typeof e.name !== 'string' || typeof e.enrich !== 'function') {
      throw new Error(`enricher module ${spec.module} must export default an object { name, enrich(batch, ctx) } or a function returning one`);
    }
    out.push(e as Enricher);
  }
  return out;
}
