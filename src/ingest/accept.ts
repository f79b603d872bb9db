import { SluiceError } from '../core/errors.js';
import { validateEvent, type EventLimits } from '../core/event.js';
import type { LogEntry } from '../core/types.js';
import type { Log } from '../ports/log.js';

export interface IngestResponse {
  accepted: number;
  duplicates: number;
  rejected: { index: number; code: string; message: string; path: string }[];
}

/**
 * The ingest stage: validate each event, append the valid ones to the log, and answer only
 * once they are durable. A bad event is rejected alone; the rest of the batch goes on. An
 * event over the size limit fails the request with 413 (a protocol limit, like the body's),
 * and nothing of the request is appended.
 */
export async function accept(
  log: Log,
  tenant: string,
  events: readonly unknown[],
  limits: EventLimits,
  receivedAt: number,
  options: { traceparent?: string; onAppended?: (seconds: number) => void } = {},
): Promise<IngestResponse> {
  const partitions = log.capabilities.partitions;
  const entries: LogEntry[] = [];
  const rejected: IngestResponse['rejected'] = [];
  for (let i = 0; i < events.length; i++) {
    const v = validateEvent(events[i], tenant, receivedAt, partitions, limits);
    if (v.ok) {
      if (options.traceparent) v.entry.trace = options.traceparent;
      entries.push(v.entry);
    }
    else if (v.rejection.code === 'event_too_large') {
      throw new SluiceError('SLUICE_ERR_EVENT_TOO_LARGE', `event ${i}: ${v.rejection.message}`, { field: `/${i}` });
    } else rejected.push({ index: i, code: v.rejection.code, message: v.rejection.message, path: v.rejection.path });
  }
  const started = performance.now();
  const outcomes = await log.append(entries, { tenant, receivedAt, received: events.length, rejected: rejected.length });
  options.onAppended?.((performance.now() - started) / 1000);
  let accepted = 0;
  for (const o of outcomes) if (o.status === 'appended') accepted++;
  return { accepted, duplicates: outcomes.length - accepted, rejected };
}
