import type { ServerResponse } from 'node:http';
import { systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import { SluiceError } from '../core/errors.js';
import type { AppendOutcome, LogEntry } from '../core/types.js';
import type { KeyGrant } from '../ports/catalog.js';
import { wireEvent } from './wire.js';

/**
 * The live tail behind `GET /v1/stream`: ingest publishes every event once it is durable in
 * the log, and each subscriber of the event's tenant gets it as a Server-Sent Event.
 *
 * Memory is bounded per client: what a client has not read yet waits in its socket's
 * buffer, and a client more than `buffer` events behind is disconnected (it reconnects and
 * resumes live; the raw-event search covers what it missed). Nothing is ever queued for a
 * tenant without subscribers.
 *
 * Streams are capped per key, per tenant and per process (`query.streamsPerKey`,
 * `query.streamsPerTenant`, `query.streams`): one more is refused with 429 naming the limit,
 * so one key cannot hold every socket. The key of every open stream is verified again every
 * second (`KEY_RECHECK_MS`); a revoked key's streams end at the first check that sees the
 * revocation, within the key cache's 4 s plus that second: the documented 5 s.
 */
export interface TailLimits {
  perKey: number;
  perTenant: number;
  total: number;
}

/** How often the keys of open streams are verified again (ms). */
export const KEY_RECHECK_MS = 1_000;

export interface TailClient {
  tenant: string;
  keyId: string;
  /** The key as presented, to verify again while the stream is open (held in memory only). */
  key: string;
  type: string | null;
  res: ServerResponse;
  /** Events written since the socket last drained. */
  pending: number;
}

export class LiveTail {
  private readonly byTenant = new Map<string, Set<TailClient>>();
  private readonly perKey = new Map<string, number>();
  private recheck: TimerHandle | null = null;
  dropped = 0;

  constructor(
    private readonly buffer: number,
    private readonly limits: TailLimits = { perKey: Infinity, perTenant: Infinity, total: Infinity },
    /** Verifies a key again (the catalog's verifyKey); null: revoked or unknown. */
    private readonly verify: ((key: string) => Promise<KeyGrant | null>) | null = null,
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * Throws 429 `SLUICE_ERR_QUOTA_EXCEEDED` naming the limit when one more stream of this key
   * would pass a cap. Call before answering 200.
   */
  admit(grant: KeyGrant): void {
    const refuse = (what: string, limit: number, setting: string): never => {
      throw new SluiceError('SLUICE_ERR_QUOTA_EXCEEDED', `at most ${limit} live-tail streams ${what} (${setting}); close one, or ask the operator to raise ${setting}`, {
        field: setting,
        retryAfter: 5,
      });
    };
    if ((this.perKey.get(grant.keyId) ?? 0) >= this.limits.perKey) refuse('per key', this.limits.perKey, 'query.streamsPerKey');
    if ((this.byTenant.get(grant.tenant)?.size ?? 0) >= this.limits.perTenant) refuse('per tenant', this.limits.perTenant, 'query.streamsPerTenant');
    if (this.clients >= this.limits.total) refuse('per server', this.limits.total, 'query.streams');
  }

  get clients(): number {
    let n = 0;
    for (const s of this.byTenant.values()) n += s.size;
    return n;
  }

  /** Called after each new stream is subscribed (a query role begins following the log at once). */
  onSubscribe: (() => void) | null = null;

  subscribe(grant: KeyGrant, key: string, type: string | null, res: ServerResponse): () => void {
    const { tenant, keyId } = grant;
    const client: TailClient = { tenant, keyId, key, type, res, pending: 0 };
    let set = this.byTenant.get(tenant);
    if (!set) this.byTenant.set(tenant, (set = new Set()));
    set.add(client);
    this.perKey.set(keyId, (this.perKey.get(keyId) ?? 0) + 1);
    this.scheduleRecheck();
    this.onSubscribe?.();
    const onDrain = (): void => {
      client.pending = 0;
    };
    res.on('drain', onDrain);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      res.off('drain', onDrain);
      set.delete(client);
      if (set.size === 0 && this.byTenant.get(tenant) === set) this.byTenant.delete(tenant);
      const n = (this.perKey.get(keyId) ?? 1) - 1;
      if (n > 0) this.perKey.set(keyId, n);
      else this.perKey.delete(keyId);
    };
  }

  private scheduleRecheck(): void {
    if (this.recheck !== null || this.verify === null) return;
    this.recheck = this.clock.setTimeout(() => {
      this.recheck = null;
      void this.recheckKeys().finally(() => {
        if (this.clients > 0) this.scheduleRecheck();
      });
    }, KEY_RECHECK_MS);
    this.recheck.unref?.();
  }

  /** Ends the streams whose key no longer verifies. Must not throw. */
  async recheckKeys(): Promise<void> {
    const byKey = new Map<string, TailClient[]>();
    for (const set of this.byTenant.values()) for (const c of set) byKey.set(c.key, [...(byKey.get(c.key) ?? []), c]);
    for (const [key, clients] of byKey) {
      let grant: KeyGrant | null;
      try {
        grant = await this.verify!(key);
      } catch {
        continue; // the catalog is away: the key cache's stale window applies, as for requests
      }
      if (grant && grant.tenant === clients[0]!.tenant) continue;
      for (const c of clients) {
        c.res.end(': the key was revoked; this stream is closed\n\n');
        c.res.destroy();
      }
    }
  }

  /** Ends every stream (the server is stopping; clients reconnect elsewhere or later). Must not throw. */
  closeAll(): void {
    if (this.recheck !== null) this.clock.clearTimeout(this.recheck);
    this.recheck = null;
    for (const set of this.byTenant.values()) for (const c of set) c.res.destroy();
    this.byTenant.clear();
    this.perKey.clear();
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
