import type { ServerResponse } from 'node:http';
import type { AppendOutcome, LogEntry } from '../core/types.js';
import { wireEvent } from './wire.js';

/**
 * The live tail behind `GET /v1/stream`: ingest publishes every event once it is durable in
 * the log, and each subscriber of the event's tenant gets it as a Server-Sent Event.
 *
 * Memory is bounded per client: what a client has not read yet waits in its socket's
 * buffer, and a client more than `buffer` events behind is disconnected (it reconnects and
 * resumes live; the raw-event search covers what it missed). Nothing is ever queued for a
 * tenant without subscribers.
 */
export interface TailClient {
  tenant: string;
  type: string | null;
  res: ServerResponse;
  /** Events written since the socket last drained. */
  pending: number;
}

export class LiveTail {
  private readonly byTenant = new Map<string, Set<TailClient>>();
  dropped = 0;

  constructor(private readonly buffer: number) {}

  get clients(): number {
    let n = 0;
    for (const s of this.byTenant.values()) n += s.size;
    return n;
  }

  subscribe(tenant: string, type: string | null, res: ServerResponse): () => void {
    const client: TailClient = { tenant, type, res, pending: 0 };
    let set = this.byTenant.get(tenant);
    if (!set) this.byTenant.set(tenant, (set = new Set()));
    set.add(client);
    const onDrain = (): void => {
      client.pending = 0;
    };
    res.on('drain', onDrain);
    return () => {
      res.off('drain', onDrain);
      set.delete(client);
      if (set.size === 0 && this.byTenant.get(tenant) === set) this.byTenant.delete(tenant);
    };
  }

  /** Ends every stream (the server is stopping; clients reconnect elsewhere or later). Must not throw. */
  closeAll(): void {
    for (const set of this.byTenant.values()) for (const c of set) c.res.destroy();
    this.byTenant.clear();
  }

  /** Called by ingest after an append is durable; cheap when the tenant has no subscriber. */
  publish(tenant: string, entries: readonly LogEntry[], outcomes: readonly AppendOutcome[]): void {
    const set = this.byTenant.get(tenant);
    if (!set) return;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const o = outcomes[i]!;
      if (o.status !== 'appended' || e.fault) continue;
      let frame: string | null = null;
      for (const c of set) {
        if (c.type !== null && c.type !== e.type) continue;
        frame ??= `id: ${o.partition}:${o.offset}\nevent: event\ndata: ${JSON.stringify(wireEvent(e))}\n\n`;
        this.send(c, frame);
      }
    }
  }

  private send(c: TailClient, frame: string): void {
    if (c.res.destroyed) return;
    if (c.pending >= this.buffer) {
      // Too slow: its socket holds `buffer` events already. Drop it rather than buffer more.
      this.dropped++;
      c.res.destroy();
      return;
    }
    if (!c.res.write(frame)) c.pending++;
  }
}
