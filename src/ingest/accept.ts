import { SluiceError } from '../core/errors.js';
import { validateEvent, type EventLimits, type TimePolicy } from '../core/event.js';
import type { AppendOutcome, LogEntry, Origin } from '../core/types.js';
import type { Log } from '../ports/log.js';
import { anonymizeIp } from '../worker/enrich.js';
import type { SchemaRegistry } from '../schema/registry.js';

export interface IngestResponse {
  accepted: number;
  duplicates: number;
  /**
   * Events that will not be counted, with the field at fault. `dead_lettered: true` marks
   * those kept in the dead-letter store (they fail their schema, are too late, or have an
   * unknown type the tenant dead-letters), from where they can be fixed and replayed.
   */
  rejected: { index: number; code: string; message: string; path: string; dead_lettered?: true }[];
}

export interface AcceptOptions {
  limits: EventLimits;
  time: TimePolicy;
  schemas: SchemaRegistry;
  receivedAt: number;
  /**
   * Zero the host part of `context.ip` before the event is written to the log
   * (`enrich.anonymizeIp`): the raw address then never reaches the log, the live tail, dead
   * letters or the store.
   */
  anonymizeIp?: boolean;
  /** The producer's clock when it sent the batch, for skew correction. */
  sentAt?: number;
  traceparent?: string;
  onAppended?: (seconds: number) => void;
  /** The entries appended, with their outcomes, once durable (the live tail). */
  onDurable?: (entries: readonly LogEntry[], outcomes: readonly AppendOutcome[]) => void;
}

/**
 * What ingest decides about one batch, before anything is written: the entries to append
 * (some carrying a fault, to be dead-lettered by a worker) and the rejections. An event
 * that fails its schema is both: the producer is told at once, and the event is kept.
 */
export async function judge(
  tenant: string,
  events: readonly unknown[],
  partitions: number,
  opts: Omit<AcceptOptions, 'traceparent' | 'onAppended'>,
  origin: Origin = 'live',
): Promise<{ entries: LogEntry[]; indexes: number[]; rejected: IngestResponse['rejected'] }> {
  const entries: LogEntry[] = [];
  const indexes: number[] = [];
  const props: Record<string, unknown>[] = [];
  const rejected: IngestResponse['rejected'] = [];
  for (let i = 0; i < events.length; i++) {
    const v = validateEvent(events[i], tenant, opts.receivedAt, partitions, opts.limits, origin, opts.time, opts.sentAt);
    if (v.ok) {
      if (opts.anonymizeIp) v.entry.context = anonymizeContextIp(v.entry.context);
      entries.push(v.entry);
      indexes.push(i);
      props.push(v.properties);
    } else if (v.rejection.code === 'event_too_large') {
      throw new SluiceError('SLUICE_ERR_EVENT_TOO_LARGE', `event ${i}: ${v.rejection.message}`, { field: `/${i}` });
    } else rejected.push({ index: i, code: v.rejection.code, message: v.rejection.message, path: v.rejection.path });
  }
  if (entries.length === 0) return { entries, indexes, rejected };

  const settings = await opts.schemas.settings(tenant);
  const schemas = await opts.schemas.schemasFor(tenant, entries.map((e) => e.type));
  const kept: LogEntry[] = [];
  const keptIndexes: number[] = [];
  for (let j = 0; j < entries.length; j++) {
    const e = entries[j]!;
    const schema = schemas.get(e.type)!;
    if (!e.fault) {
      if (schema) {
        const violation = schema.check(props[j]);
        if (violation) e.fault = { reason: 'schema_violation', ...violation, schemaVersion: schema.version };
      } else if (settings.unknownTypes === 'reject') {
        rejected.push({ index: indexes[j]!, code: 'unknown_type', path: '/type', message: `no schema for type "${e.type}"; this tenant rejects unknown types` });
        continue;
      } else if (settings.unknownTypes === 'dead-letter') {
        e.fault = { reason: 'unknown_type', path: '/type', message: `no schema for type "${e.type}"` };
      }
    }
    if (e.fault) rejected.push({ index: indexes[j]!, code: e.fault.reason, message: e.fault.message, path: e.fault.path, dead_lettered: true });
    kept.push(e);
    keptIndexes.push(indexes[j]!);
  }
  rejected.sort((a, b) => a.index - b.index);
  return { entries: kept, indexes: keptIndexes, rejected };
}

/**
 * The ingest stage: judge each event, append what is kept to the log, and answer only once
 * it is durable. A bad event is rejected alone; the rest of the batch goes on. An event
 * over the size limit fails the request with 413 (a protocol limit, like the body's), and
 * nothing of the request is appended.
 */
export async function accept(log: Log, tenant: string, events: readonly unknown[], opts: AcceptOptions): Promise<IngestResponse> {
  const { entries, indexes, rejected } = await judge(tenant, events, log.capabilities.partitions, opts);
  if (opts.traceparent) for (const e of entries) e.trace = opts.traceparent;
  const started = performance.now();
  // Events kept as dead letters are not "rejected" for the conservation check: they end as dead letters.
  const refused = rejected.reduce((n, r) => n + (r.dead_lettered ? 0 : 1), 0);
  const outcomes = await log.append(entries, { tenant, receivedAt: opts.receivedAt, received: events.length, rejected: refused });
  opts.onAppended?.((performance.now() - started) / 1000);
  opts.onDurable?.(entries, outcomes);
  let accepted = 0;
  let duplicates = 0;
  // A faulty event seen before is a duplicate, not a new rejection: its dead letter exists.
  const seenFaults = new Set<number>();
  for (let i = 0; i < outcomes.length; i++) {
    if (outcomes[i]!.status === 'duplicate') {
      duplicates++;
      if (entries[i]!.fault) seenFaults.add(indexes[i]!);
    } else if (!entries[i]!.fault) accepted++;
  }
  return { accepted, duplicates, rejected: seenFaults.size === 0 ? rejected : rejected.filter((r) => !seenFaults.has(r.index)) };
}

/** `context` (JSON) with `ip` anonymized (see worker/enrich.ts's anonymizeIp), or as it was. */
export function anonymizeContextIp(context: string): string {
  if (!context.includes('"ip"')) return context;
  const ctx = JSON.parse(context) as Record<string, unknown>;
  if (typeof ctx.ip !== 'string') return context;
  const masked = anonymizeIp(ctx.ip);
  if (masked === ctx.ip) return context;
  if (masked === null) delete ctx.ip;
  else ctx.ip = masked;
  return JSON.stringify(ctx);
}
