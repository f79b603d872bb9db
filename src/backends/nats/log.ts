import { createHash, randomBytes } from 'node:crypto';
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  DiscardPolicy,
  nanos,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type KV,
  type NatsConnection,
} from 'nats';
import { coerceError, FencedError, SluiceError } from '../../core/errors.js';
import { replayDedupeKey } from '../../core/hash.js';
import type { AppendOutcome, Fault, LogEntry, LogRecord, Origin, Receipt, Tally } from '../../core/types.js';
import type { Lease, Log, LogCapabilities, PartitionPosition } from '../../ports/log.js';
import { deliveryWindow, type DeliveryMarker } from '../delivery.js';
import { PipelinedPublisher } from './publisher.js';

export interface NatsLogOptions {
  /** NATS servers, `host:port` or `nats://host:port`. */
  servers: string[];
  /** The JetStream stream's name; also the prefix of its subjects and KV buckets. */
  stream: string;
  partitions: number;
  /** Stream replicas: 1 by default, 3 in production (a 3-node cluster). */
  replicas: number;
  /**
   * JetStream's duplicate window: how long the server remembers a message id (in memory, so
   * minutes, not days). A key is remembered for at least half of it (the log's dedupe horizon);
   * the store's key ledger catches what comes later.
   */
  duplicateWindowMs: number;
  /** How long records stay in the stream, acknowledged or not (JetStream's max_age); 0 = no limit. */
  retentionMs: number;
  /** How long an append waits for the server's acknowledgements before it fails. */
  publishTimeoutMs?: number;
  /** The clock of leases and memberships. */
  now?: () => number;
  /** Records a `seen` lookup scans at most (the newest of the duplicate window). */
  seenScanLimit?: number;
}

/** One partition's state for one consumer group, in one KV entry: lease, position, last delivery. */
interface PartitionState {
  owner: string | null;
  /** The grant's fencing token; null on the write that granted it (the token is that write's revision). */
  token: number | null;
  expiresAt: number;
  committed: number;
  delivery: DeliveryMarker | null;
}

interface Cursor {
  name: string;
  /** Stream sequence the consumer delivers next (after the last one it delivered). */
  next: number;
  /** The consumer's own count of deliveries so far: each message delivered to us is the next one. */
  delivered: number;
}

const EMPTY: PartitionState = { owner: null, token: null, expiresAt: 0, committed: 0, delivery: null };
const TALLY_TTL_MS = 86_400_000;
const CAS_RETRIES = 20;
const PULL_TIMEOUT_MS = 3_000;
/** After a consumer failure: how long reads go direct, and how many records one such read takes. */
const DIRECT_MODE_MS = 10_000;
const DIRECT_BATCH = 200;

/** A record as read: its stream sequence and its bytes. */
interface Fetched {
  seq: number;
  data: Uint8Array;
  /** The consumer's delivery number (pulls only). */
  delivered?: number;
  /** When the server stored it (epoch ms). */
  time: number;
}

/**
 * The Log on NATS JetStream.
 *
 * - One stream; partition p is the subject `<stream>.p.<p>`; a record's offset is its
 *   stream sequence (increasing within a partition, not contiguous).
 * - Appends are pipelined (see publisher.ts) with `Nats-Msg-Id` = a hash of (tenant,
 *   idempotency key), so JetStream's duplicate window dedupes retries at write time.
 * - Each (group, partition) has one entry in the `<stream>_state` KV bucket that holds the
 *   lease, the committed offset and the last delivery. Every change is a compare-and-set on
 *   that entry's revision, and a grant's token is the revision of the write that granted it,
 *   so a consumer that lost its lease cannot read, ack or renew: the check and the write are
 *   one atomic operation on the server.
 * - Reads go through a per-partition ephemeral consumer positioned at the committed offset
 *   (no acks: the position lives in the KV entry, written after the store commits). The
 *   log does not use JetStream's redelivery: it would redeliver out of order (the store
 *   dedupes by position, which needs order) and count an attempt against every record of a
 *   crashed batch, where the shared delivery window bisects down to the poison record.
 */
export class NatsLog implements Log {
  readonly name = 'nats';
  readonly capabilities: LogCapabilities;
  private readonly now: () => number;
  private readonly cursors = new Map<string, Cursor>();
  /** Partition entries as this process last saw them (see getState). */
  private readonly known = new Map<string, { s: PartitionState; revision: number }>();
  private readonly tallyBuffer = new Map<string, Tally>();
  private tallyTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private inFlight = new Map<number, number>();
  private nextAppend = 1;
  private directUntil = 0;

  private constructor(
    private readonly opts: NatsLogOptions,
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly state: KV,
    private readonly talliesKv: KV,
    private readonly publisher: PipelinedPublisher,
  ) {
    this.now = opts.now ?? Date.now;
    this.capabilities = { partitions: opts.partitions, dedupeHorizonMs: Math.floor(opts.duplicateWindowMs / 2) };
    this.tallyTimer = setInterval(() => void this.flushTallies(), 1_000);
    this.tallyTimer.unref();
  }

  /** Connects, and creates the stream and buckets if they do not exist (checking them if they do). */
  static async open(opts: NatsLogOptions): Promise<NatsLog> {
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: opts.servers, name: `sluice ${process.pid}`, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
    } catch (e: unknown) {
      throw new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `cannot reach NATS at ${opts.servers.join(',')}: ${coerceError(e).message}. Start it (see the README: "Running on NATS and PostgreSQL") or fix --log.`, {
        retryAfter: 5,
      });
    }
    try {
      // API calls give up after 3 s (not 5): a worker then reads directly (see fetch).
      const jsm = await nc.jetstreamManager({ timeout: 3_000 });
      await ensureStream(jsm, opts);
      const js = nc.jetstream();
      const state = await js.views.kv(`${opts.stream}_state`, { history: 1, replicas: opts.replicas });
      const tallies = await js.views.kv(`${opts.stream}_tallies`, { history: 1, replicas: opts.replicas, ttl: TALLY_TTL_MS });
      return new NatsLog(opts, nc, jsm, js, state, tallies, new PipelinedPublisher(nc, opts.stream));
    } catch (e: unknown) {
      await nc.close().catch(() => undefined);
      throw e;
    }
  }

  private subject(partition: number): string {
    return `${this.opts.stream}.p.${partition}`;
  }

  // ---- append ---------------------------------------------------------------------------

  async append(entries: readonly LogEntry[], receipt?: Receipt): Promise<AppendOutcome[]> {
    if (this.closed) throw new SluiceError('SLUICE_ERR_SHUTTING_DOWN', 'the log is closed', { retryAfter: 1 });
    const id = this.nextAppend++;
    let oldest = Infinity;
    for (const e of entries) if (e.receivedAt < oldest) oldest = e.receivedAt;
    if (entries.length > 0) this.inFlight.set(id, oldest);
    try {
      const acks = await this.publisher.publishAll(
        entries.map((e) => ({ subject: this.subject(e.partition), data: encodeEntry(e), msgId: msgIdOf(e) })),
        this.opts.publishTimeoutMs ?? 10_000,
      );
      let duplicates = 0;
      const out = acks.map((ack, i): AppendOutcome => {
        if (ack.duplicate) {
          duplicates++;
          return { status: 'duplicate' };
        }
        return { status: 'appended', partition: entries[i]!.partition, offset: ack.seq };
      });
      if (receipt) this.tally(receipt, duplicates);
      return out;
    } finally {
      this.inFlight.delete(id);
    }
  }

  /**
   * Receipts are summed in memory and added to the tallies bucket every second (one
   * compare-and-set per tenant and minute, not one per request). A crash loses at most the
   * last second of tallies: the conservation check then shows a gap for that minute.
   */
  private tally(receipt: Receipt, duplicates: number): void {
    const minute = receipt.receivedAt - (receipt.receivedAt % 60_000);
    const k = `${minute}\u0000${receipt.tenant}`;
    const t = this.tallyBuffer.get(k) ?? { tenant: receipt.tenant, minute, received: 0, rejected: 0, duplicate: 0 };
    t.received += receipt.received;
    t.rejected += receipt.rejected;
    t.duplicate += duplicates;
    this.tallyBuffer.set(k, t);
  }

  /** Adds the buffered receipts to the bucket: one entry per minute, holding each tenant's tally. */
  private async flushTallies(): Promise<void> {
    const byMinute = new Map<number, Tally[]>();
    for (const t of this.tallyBuffer.values()) byMinute.set(t.minute, [...(byMinute.get(t.minute) ?? []), t]);
    this.tallyBuffer.clear();
    for (const [minute, adds] of byMinute) {
      try {
        await casUpdate(this.talliesKv, String(minute), (prev: Record<string, Tally> | null) => {
          const next = { ...prev };
          for (const t of adds) {
            const p = next[t.tenant];
            next[t.tenant] = p ? { ...p, received: p.received + t.received, rejected: p.rejected + t.rejected, duplicate: p.duplicate + t.duplicate } : t;
          }
          return next;
        });
      } catch {
        // NATS unreachable: keep them for the next flush.
        for (const t of adds) this.tally({ tenant: t.tenant, receivedAt: t.minute, received: t.received, rejected: t.rejected }, t.duplicate);
      }
    }
  }

  async tallies(from: number, to: number): Promise<Tally[]> {
    await this.flushTallies();
    const minutes: number[] = [];
    for (let m = from - (from % 60_000); m < to; m += 60_000) if (m >= from) minutes.push(m);
    const entries = await Promise.all(minutes.map((m) => this.talliesKv.get(String(m))));
    return entries.flatMap((e) => (e && e.operation === 'PUT' ? Object.values(e.json<Record<string, Tally>>()) : []));
  }

  async seen(tenant: string, idempotencyKey: string): Promise<boolean> {
    // JetStream's duplicate table cannot be queried: scan the newest records of its window.
    const info = await this.jsm.streams.info(this.opts.stream);
    const limit = this.opts.seenScanLimit ?? 100_000;
    const since = Date.now() - this.opts.duplicateWindowMs;
    const start = Math.max(info.state.first_seq, info.state.last_seq - limit + 1);
    let found = false;
    await this.scan(`${this.opts.stream}.p.*`, start, info.state.last_seq, (m) => {
      if (m.time < since) return;
      const e = decodeEntry(m.data);
      if (e.tenant === tenant && e.idempotencyKey === idempotencyKey && e.replay === undefined) found = true;
    });
    return found;
  }

  // ---- leases and membership ------------------------------------------------------------

  private stateKey(group: string, partition: number): string {
    return `p.${hexOf(group)}.${partition}`;
  }

  /**
   * A partition's entry. `cached`: as this process last wrote or read it, when it has, which
   * saves a round trip per read of a held partition. Safe because every write is a
   * compare-and-set on the revision: a stale entry makes the write fail, and the caller then
   * reads it afresh. Only the holder writes its entry, so for a lease still held it is current.
   */
  private async getState(group: string, partition: number, cached = false): Promise<{ s: PartitionState; revision: number }> {
    const key = this.stateKey(group, partition);
    const known = cached ? this.known.get(key) : undefined;
    if (known) return known;
    const e = await this.state.get(key);
    const got = !e || e.operation !== 'PUT' ? { s: EMPTY, revision: 0 } : { s: e.json<PartitionState>(), revision: e.revision };
    this.known.set(key, got);
    return got;
  }

  private holds(lease: Lease, s: PartitionState, revision: number): boolean {
    return s.owner === lease.owner && (s.token ?? revision) === lease.token;
  }

  /** Writes a new state if the entry is still at `revision`; the new revision, or null when someone wrote first. */
  private async put(group: string, partition: number, s: PartitionState, revision: number): Promise<number | null> {
    const key = this.stateKey(group, partition);
    try {
      const next = revision === 0 ? await this.state.create(key, JSON.stringify(s)) : await this.state.update(key, JSON.stringify(s), revision);
      this.known.set(key, { s, revision: next });
      return next;
    } catch (e: unknown) {
      this.known.delete(key);
      if (/wrong last sequence|key exists/i.test(coerceError(e).message)) return null;
      throw e;
    }
  }

  async acquire(group: string, partition: number, owner: string, ttlMs: number): Promise<Lease | null> {
    for (let i = 0; i < CAS_RETRIES; i++) {
      const now = this.now();
      const { s, revision } = await this.getState(group, partition);
      if (s.owner !== null && s.owner !== owner && s.expiresAt > now) return null;
      const token = await this.put(group, partition, { ...s, owner, token: null, expiresAt: now + ttlMs }, revision);
      if (token !== null) {
        this.dropCursor(group, partition);
        return { group, partition, owner, token, expiresAt: now + ttlMs };
      }
    }
    return null;
  }

  /** Applies `change` to the lease's entry if the lease still holds; false when it was lost. */
  private async withLease(lease: Lease, change: (s: PartitionState) => PartitionState): Promise<boolean> {
    for (let i = 0; i < CAS_RETRIES; i++) {
      const { s, revision } = await this.getState(lease.group, lease.partition, i === 0);
      if (!this.holds(lease, s, revision)) return false;
      if ((await this.put(lease.group, lease.partition, { ...change(s), token: lease.token }, revision)) !== null) return true;
    }
    return false;
  }

  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    try {
      return await this.withLease(lease, (s) => ({ ...s, expiresAt: this.now() + ttlMs }));
    } catch {
      return false;
    }
  }

  async release(lease: Lease): Promise<void> {
    try {
      await this.withLease(lease, (s) => ({ ...s, owner: null, expiresAt: 0 }));
    } catch {
      // The lease expires by itself.
    }
    this.dropCursor(lease.group, lease.partition);
  }

  // KV key listings are not read-your-writes in this client: a group's members share one
  // entry, changed by compare-and-set, instead of one key each.
  async join(group: string, owner: string, ttlMs: number): Promise<number> {
    let live = 0;
    await casUpdate(this.state, `m.${hexOf(group)}`, (prev: Record<string, number> | null) => {
      const now = this.now();
      const members: Record<string, number> = {};
      for (const [o, expiresAt] of Object.entries(prev ?? {})) if (expiresAt > now) members[o] = expiresAt;
      members[owner] = now + ttlMs;
      live = Object.keys(members).length;
      return members;
    });
    return live;
  }

  async leave(group: string, owner: string): Promise<void> {
    await casUpdate(this.state, `m.${hexOf(group)}`, (prev: Record<string, number> | null) => {
      const members = { ...prev };
      delete members[owner];
      return members;
    }).catch(() => undefined);
  }

  // ---- read and ack ---------------------------------------------------------------------

  async read(lease: Lease, max: number): Promise<LogRecord[]> {
    for (let i = 0; i < CAS_RETRIES; i++) {
      const { s, revision } = await this.getState(lease.group, lease.partition, i === 0);
      if (!this.holds(lease, s, revision)) throw new FencedError(`lease on partition ${lease.partition} was lost (token ${lease.token})`);
      const start = s.committed + 1;
      const w = deliveryWindow(s.delivery, start, max);
      const msgs = (await this.fetch(lease.group, lease.partition, start, w.win)).filter((m) => w.to === null || m.seq <= w.to);
      if (msgs.length === 0) return [];
      const delivery: DeliveryMarker = { from: start, to: w.to ?? msgs[msgs.length - 1]!.seq, win: msgs.length, attempts: w.attempts };
      // The delivery is persisted before the records are returned: a record that crashes
      // the process is counted too. A concurrent renew moved the revision: try again.
      if ((await this.put(lease.group, lease.partition, { ...s, token: lease.token, delivery }, revision)) === null) continue;
      return msgs.map((m) => ({ ...decodeEntry(m.data), partition: lease.partition, offset: m.seq, attempt: w.attempts, ...(w.suspect ? { suspect: true } : {}) }));
    }
    throw new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `the state of partition ${lease.partition} keeps changing under this reader`, { retryAfter: 1 });
  }

  async ack(lease: Lease, offset: number): Promise<boolean> {
    try {
      return await this.withLease(lease, (s) => ({
        ...s,
        committed: Math.max(s.committed, offset),
        delivery: s.delivery && s.delivery.to <= offset ? null : s.delivery,
      }));
    } catch {
      return false;
    }
  }

  /** Up to `max` records of a partition from sequence `start`, through the partition's ephemeral consumer. */
  private async fetch(group: string, partition: number, start: number, max: number): Promise<Fetched[]> {
    // While consumers cannot be made (a server died: the cluster is electing leaders and
    // placing consumers), read message by message from any replica instead.
    if (Date.now() < this.directUntil) return this.directRead(partition, start, Math.min(max, DIRECT_BATCH));
    const key = `${group}\u0000${partition}`;
    let cursor = this.cursors.get(key);
    try {
      if (!cursor || cursor.next !== start) {
        if (cursor) this.dropCursorKey(key);
        cursor = { name: await this.createConsumer(this.subject(partition), start), next: start, delivered: 0 };
        this.cursors.set(key, cursor);
      }
      const out = await this.pull(cursor.name, max);
      // The consumer numbers its deliveries: a gap means some went elsewhere (a pull that
      // was given up, answered late), and the records in it would be skipped. Never trust
      // such a consumer: read again from `start` through a new one.
      for (const m of out) {
        if (m.delivered !== ++cursor.delivered) {
          this.dropCursorKey(key);
          throw new SkippedDelivery('SLUICE_ERR_LOG_UNAVAILABLE', `the consumer of partition ${partition} skipped a delivery; reading again from ${start}`, { retryAfter: 0 });
        }
      }
      if (out.length > 0) cursor.next = out[out.length - 1]!.seq + 1;
      return out;
    } catch (e: unknown) {
      if (e instanceof SkippedDelivery) throw e;
      // A pull that gets no answer went to a consumer on a server that is gone (ephemeral
      // consumers live on one server), and a consumer that cannot be made waits on an
      // election. Drop every consumer (their neighbours are likely gone too) and read
      // directly for a while.
      for (const c of [...this.cursors.keys()]) this.dropCursorKey(c);
      this.directUntil = Date.now() + DIRECT_MODE_MS;
      return this.directRead(partition, start, Math.min(max, DIRECT_BATCH));
    }
  }

  /** Up to `max` records of a partition from `start`, one direct get each (any replica answers). */
  private async directRead(partition: number, start: number, max: number): Promise<Fetched[]> {
    const out: Fetched[] = [];
    let seq = start;
    while (out.length < max) {
      try {
        const m = await directApi(this.jsm).getMessage(this.opts.stream, { next_by_subj: this.subject(partition), seq });
        out.push({ seq: m.seq, data: m.data, time: m.time.getTime() });
        seq = m.seq + 1;
      } catch (e: unknown) {
        if (isNotFound(e)) break;
        if (out.length > 0) break;
        throw e;
      }
    }
    return out;
  }

  /**
   * One pull of up to `batch` messages that are there now. The client would wait for ever
   * for the answer of a consumer whose server died: the pull is bounded by a timer.
   */
  private async pull(consumer: string, batch: number): Promise<Fetched[]> {
    const out: Fetched[] = [];
    const iter = this.js.fetch(this.opts.stream, consumer, { batch, no_wait: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      iter.stop();
    }, PULL_TIMEOUT_MS);
    try {
      for await (const m of iter) out.push({ seq: m.seq, data: m.data, time: m.info.timestampNanos / 1e6, delivered: m.info.deliverySequence });
    } finally {
      clearTimeout(timer);
    }
    if (timedOut) {
      throw new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `a pull from the stream ${this.opts.stream} got no answer within ${PULL_TIMEOUT_MS} ms (a NATS server is away?); retrying`, {
        retryAfter: 1,
      });
    }
    return out;
  }

  private async createConsumer(filter: string, start: number): Promise<string> {
    const name = `sluice_${randomBytes(8).toString('hex')}`;
    await this.jsm.consumers.add(this.opts.stream, {
      name,
      filter_subject: filter,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, start),
      // Forgotten by the server if this process goes away: nothing leaks.
      inactive_threshold: nanos(120_000),
      mem_storage: true,
      num_replicas: 1,
    });
    return name;
  }

  private dropCursor(group: string, partition: number): void {
    this.dropCursorKey(`${group}\u0000${partition}`);
  }

  private dropCursorKey(key: string): void {
    const cursor = this.cursors.get(key);
    if (!cursor) return;
    this.cursors.delete(key);
    void this.jsm.consumers.delete(this.opts.stream, cursor.name).catch(() => undefined);
  }

  /** Calls `visit` for every record of `filter` with sequence in [from, to], through a throwaway consumer. */
  private async scan(filter: string, from: number, to: number, visit: (m: Fetched) => void): Promise<void> {
    if (to < from) return;
    const name = await this.createConsumer(filter, from);
    try {
      for (;;) {
        const msgs = await this.pull(name, 1_000);
        for (const m of msgs) if (m.seq <= to) visit(m);
        if (msgs.length === 0 || msgs[msgs.length - 1]!.seq >= to) return;
      }
    } finally {
      await this.jsm.consumers.delete(this.opts.stream, name).catch(() => undefined);
    }
  }

  // ---- positions, watermark, health -------------------------------------------------------

  private async head(partition: number): Promise<number> {
    try {
      return (await this.jsm.streams.getMessage(this.opts.stream, { last_by_subj: this.subject(partition) })).seq;
    } catch (e: unknown) {
      if (isNotFound(e)) return 0;
      throw e;
    }
  }

  /** The first record of a partition after sequence `after`, or null. */
  private async firstAfter(partition: number, after: number): Promise<Omit<LogEntry, 'partition'> | null> {
    try {
      return decodeEntry((await directApi(this.jsm).getMessage(this.opts.stream, { next_by_subj: this.subject(partition), seq: after + 1 })).data);
    } catch (e: unknown) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async positions(group: string): Promise<PartitionPosition[]> {
    const now = this.now();
    return Promise.all(
      Array.from({ length: this.opts.partitions }, async (_, partition) => {
        const [head, { s }] = await Promise.all([this.head(partition), this.getState(group, partition)]);
        const committed = s.committed;
        const oldest = head > committed ? ((await this.firstAfter(partition, committed))?.receivedAt ?? null) : null;
        return { partition, head, committed, oldestUnackedAt: oldest, owner: s.expiresAt > now ? s.owner : null };
      }),
    );
  }

  async backlogByTenant(group: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let p = 0; p < this.opts.partitions; p++) {
      const [head, { s }] = await Promise.all([this.head(p), this.getState(group, p)]);
      await this.scan(this.subject(p), s.committed + 1, head, (m) => {
        const tenant = decodeEntry(m.data).tenant;
        out.set(tenant, (out.get(tenant) ?? 0) + 1);
      });
    }
    return out;
  }

  async oldestUnapplied(applied: ReadonlyMap<number, number>): Promise<number | null> {
    let oldest: number | null = null;
    for (const at of this.inFlight.values()) if (oldest === null || at < oldest) oldest = at;
    const firsts = await Promise.all(Array.from({ length: this.opts.partitions }, (_, p) => this.firstAfter(p, applied.get(p) ?? 0)));
    for (const e of firsts) if (e && (oldest === null || e.receivedAt < oldest)) oldest = e.receivedAt;
    return oldest;
  }

  async health(): Promise<{ ok: boolean; detail?: string; bytes?: number; recordBytes?: number }> {
    if (this.closed) return { ok: false, detail: 'closed' };
    try {
      const info = await this.jsm.streams.info(this.opts.stream);
      const { bytes, messages } = info.state;
      return { ok: true, bytes, ...(messages > 0 ? { recordBytes: Math.round(bytes / messages) } : {}) };
    } catch (e: unknown) {
      return { ok: false, detail: `NATS: ${coerceError(e).message}` };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.tallyTimer) clearInterval(this.tallyTimer);
    try {
      // In-flight appends get their acks (or their timeout) first.
      const deadline = Date.now() + (this.opts.publishTimeoutMs ?? 10_000);
      while (this.publisher.pending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await this.flushTallies();
      await Promise.all([...this.cursors.values()].map((c) => this.jsm.consumers.delete(this.opts.stream, c.name).catch(() => undefined)));
      this.cursors.clear();
      this.publisher.close();
      await this.nc.drain();
    } catch {
      await this.nc.close().catch(() => undefined);
    }
  }
}

/** A consumer delivered to someone else (see fetch): the read is retried from its start. */
class SkippedDelivery extends SluiceError {}

/** Creates the stream, or checks that an existing one has the same partitions. */
async function ensureStream(jsm: JetStreamManager, opts: NatsLogOptions): Promise<void> {
  const description = `sluice log; partitions=${opts.partitions}`;
  const config = {
    name: opts.stream,
    subjects: [`${opts.stream}.p.*`],
    description,
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    num_replicas: opts.replicas,
    duplicate_window: nanos(opts.duplicateWindowMs),
    max_age: opts.retentionMs > 0 ? nanos(Math.max(opts.retentionMs, opts.duplicateWindowMs)) : 0,
    allow_direct: true,
  };
  let existing;
  try {
    existing = await jsm.streams.info(opts.stream);
  } catch (e: unknown) {
    if (!isNotFound(e)) throw e;
    await jsm.streams.add(config);
    return;
  }
  const had = /partitions=(\d+)/.exec(existing.config.description ?? '')?.[1];
  if (had !== undefined && Number(had) !== opts.partitions) {
    throw new SluiceError(
      'SLUICE_ERR_CONFIG',
      `the stream ${opts.stream} was created with ${had} partitions, and the configuration says ${opts.partitions}: records would land in other partitions. Set partitions back to ${had}, or use another stream name.`,
    );
  }
  if (existing.config.duplicate_window !== config.duplicate_window || existing.config.max_age !== config.max_age) {
    await jsm.streams.update(opts.stream, { ...existing.config, duplicate_window: config.duplicate_window, max_age: config.max_age, allow_direct: true });
  }
}

/** The direct-get API: the client has it on every manager, its typings only on the class. */
interface DirectGet {
  getMessage(stream: string, query: { next_by_subj: string; seq: number }): Promise<{ seq: number; data: Uint8Array; time: Date }>;
}

function directApi(jsm: JetStreamManager): DirectGet {
  return (jsm as JetStreamManager & { direct: DirectGet }).direct;
}

function isNotFound(e: unknown): boolean {
  const err = e as { code?: unknown; api_error?: { code?: number }; message?: string };
  return err?.code === '404' || err?.code === 404 || err?.api_error?.code === 404 || /not found/i.test(err?.message ?? '');
}

async function casUpdate<T>(kv: KV, key: string, change: (prev: T | null) => T): Promise<void> {
  for (let i = 0; i < CAS_RETRIES; i++) {
    const e = await kv.get(key);
    const prev = e && e.operation === 'PUT' ? e.json<T>() : null;
    const data = JSON.stringify(change(prev));
    try {
      if (e) await kv.update(key, data, e.revision);
      else await kv.create(key, data);
      return;
    } catch (err: unknown) {
      if (!/wrong last sequence|key exists/i.test(coerceError(err).message)) throw err;
    }
  }
  throw new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `too much contention on ${key}`, { retryAfter: 1 });
}

/** KV keys allow a small alphabet: names go in as hex. */
function hexOf(s: string): string {
  return Buffer.from(s, 'utf8').toString('hex');
}

/** The dedupe id of an entry: what makes two appends the same event (tenant, key, replay generation). */
function msgIdOf(e: LogEntry): string {
  const key = e.replay === undefined ? e.idempotencyKey : replayDedupeKey(e.idempotencyKey, e.replay);
  return createHash('sha256').update(e.tenant).update('\u0000').update(key).digest('base64url');
}

/** The wire form of a record: JSON with short names; properties and context stay the producer's text. */
interface WireEntry {
  t: string;
  y: string;
  k: string;
  i: string;
  ts: number;
  r: number;
  o: Origin;
  p: string;
  c: string;
  tr?: string;
  f?: Fault;
  g?: number;
}

const encoder = new TextEncoder();

function encodeEntry(e: LogEntry): Uint8Array {
  const w: WireEntry = { t: e.tenant, y: e.type, k: e.key, i: e.idempotencyKey, ts: e.ts, r: e.receivedAt, o: e.origin, p: e.properties, c: e.context };
  if (e.trace !== undefined) w.tr = e.trace;
  if (e.fault !== undefined) w.f = e.fault;
  if (e.replay !== undefined) w.g = e.replay;
  return encoder.encode(JSON.stringify(w));
}

function decodeEntry(data: Uint8Array): Omit<LogEntry, 'partition'> {
  const w = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as WireEntry;
  return {
    tenant: w.t,
    type: w.y,
    key: w.k,
    idempotencyKey: w.i,
    ts: w.ts,
    receivedAt: w.r,
    origin: w.o,
    properties: w.p,
    context: w.c,
    ...(w.tr === undefined ? {} : { trace: w.tr }),
    ...(w.f === undefined ? {} : { fault: w.f }),
    ...(w.g === undefined ? {} : { replay: w.g }),
  };
}
