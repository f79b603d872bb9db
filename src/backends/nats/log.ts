import { systemClock, type Clock } from '../../core/clock.js';
import { connect, type JetStreamManager, type KV, type NatsConnection } from 'nats';
import { retryUntil } from '../../core/backoff.js';
import { coerceError, FencedError, SluiceError } from '../../core/errors.js';
import type { AppendOutcome, LogEntry, LogRecord, Receipt, Tally } from '../../core/types.js';
import type { Lease, Log, LogCapabilities, LogHealth, PartitionPosition } from '../../ports/log.js';
import { deliveryWindow, type DeliveryMarker } from '../delivery.js';
import { PipelinedPublisher } from './publisher.js';
import { StreamReader } from './reader.js';
import { searchOffsetForTime } from '../offset-for-time.js';
import { decodeEntry, encodeEntry, msgIdOf } from './records.js';
import { ensureStream, isNotFound, namesOf, subjectOf } from './stream.js';

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
  /** How long opening waits for a cluster that is still forming (60 s by default). */
  startTimeoutMs?: number;
  /** How long an append waits for the server's acknowledgements before it fails. */
  publishTimeoutMs?: number;
  /** The clock of leases and memberships (the system clock by default). */
  clock?: Pick<Clock, 'now'>;
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

const EMPTY: PartitionState = { owner: null, token: null, expiresAt: 0, committed: 0, delivery: null };
const TALLY_TTL_MS = 86_400_000;
/** What a JetStream cluster answers while it forms or elects its leader: worth waiting for at start. */
const FORMING = /no suitable peers|temporarily unavailable|no responders|timeout/i;
const CAS_RETRIES = 20;

/** How often a partition's lag is counted again by the server (ms); see NatsLog.pendingOf. */
const PENDING_REFRESH_MS = 10_000;

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
  /** Partition entries as this process last saw them (see getState). */
  private readonly known = new Map<string, { s: PartitionState; revision: number }>();
  private readonly tallyBuffer = new Map<string, Tally>();
  private tallyTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly inFlight = new Map<number, number>();
  private nextAppend = 1;

  private constructor(
    private readonly opts: NatsLogOptions,
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly reader: StreamReader,
    private readonly state: KV,
    private readonly talliesKv: KV,
    private readonly publisher: PipelinedPublisher,
  ) {
    const clock = opts.clock ?? systemClock;
    this.now = () => clock.now();
    this.capabilities = { partitions: opts.partitions, dedupeHorizonMs: Math.floor(opts.duplicateWindowMs / 2) };
    this.tallyTimer = setInterval(() => void this.flushTallies(), 1_000);
    this.tallyTimer.unref();
  }

  /** Connects, and creates the stream and buckets if they do not exist (checking them if they do). */
  static async open(opts: NatsLogOptions): Promise<NatsLog> {
    // Every process of a deployment may start at once, NATS with them: servers that refuse
    // connections, or a cluster still forming ("no suitable peers", "temporarily unavailable",
    // no answer), are waited for until the deadline.
    const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
    const backoff = { deadline, baseMs: 250, capMs: 3_000 };
    let nc: NatsConnection;
    try {
      nc = await retryUntil(() => connect({ servers: opts.servers, name: `sluice ${process.pid}`, maxReconnectAttempts: -1, reconnectTimeWait: 500 }), backoff);
    } catch (e: unknown) {
      throw new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `cannot reach NATS at ${opts.servers.join(',')}: ${coerceError(e).message}. Start it (see the README: "Scaling out: NATS JetStream and PostgreSQL") or fix --log.`, {
        retryAfter: 5,
      });
    }
    const forming = (e: unknown): boolean => FORMING.test(coerceError(e).message);
    try {
      return await retryUntil(async () => {
        // API calls give up after 3 s (not 5): a worker then reads directly (see reader.ts).
        const jsm = await nc.jetstreamManager({ timeout: 3_000 });
        await ensureStream(jsm, opts);
        const js = nc.jetstream();
        const names = namesOf(opts.stream);
        const state = await js.views.kv(names.stateBucket, { history: 1, replicas: opts.replicas });
        const tallies = await js.views.kv(names.talliesBucket, { history: 1, replicas: opts.replicas, ttl: TALLY_TTL_MS });
        return new NatsLog(opts, nc, jsm, new StreamReader(jsm, js, opts.stream), state, tallies, new PipelinedPublisher(nc, opts.stream));
      }, { ...backoff, retryable: forming });
    } catch (e: unknown) {
      await nc.close().catch(() => undefined);
      if (!forming(e)) throw e;
      throw new SluiceError(
        'SLUICE_ERR_LOG_UNAVAILABLE',
        `JetStream at ${opts.servers.join(',')} did not become ready (${coerceError(e).message}): is JetStream enabled (nats-server -js), and have ${opts.replicas} servers of the cluster joined (log.replicas)?`,
        { retryAfter: 5, cause: e },
      );
    }
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
        entries.map((e) => ({ subject: subjectOf(this.opts.stream, e.partition), data: encodeEntry(e), msgId: msgIdOf(e) })),
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
    await this.reader.scan('*', start, info.state.last_seq, (m) => {
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
    this.known.delete(key);
    const next = await writeAt(this.state, key, JSON.stringify(s), revision);
    if (next !== null) this.known.set(key, { s, revision: next });
    return next;
  }

  async acquire(group: string, partition: number, owner: string, ttlMs: number): Promise<Lease | null> {
    for (let i = 0; i < CAS_RETRIES; i++) {
      const now = this.now();
      const { s, revision } = await this.getState(group, partition);
      if (s.owner !== null && s.owner !== owner && s.expiresAt > now) return null;
      const token = await this.put(group, partition, { ...s, owner, token: null, expiresAt: now + ttlMs }, revision);
      if (token !== null) {
        this.reader.drop(readerKey(group, partition));
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
    this.reader.drop(readerKey(lease.group, lease.partition));
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
      const msgs = (await this.reader.read(readerKey(lease.group, lease.partition), lease.partition, start, w.win)).filter((m) => w.to === null || m.seq <= w.to);
      if (msgs.length === 0) return [];
      const delivery: DeliveryMarker = { from: start, to: w.to ?? msgs[msgs.length - 1]!.seq, win: msgs.length, attempts: w.attempts };
      // The delivery is persisted before the records are returned: a record that crashes
      // the process is counted too. A concurrent renew moved the revision: try again.
      if ((await this.put(lease.group, lease.partition, { ...s, token: lease.token, delivery }, revision)) === null) continue;
      return msgs.map((m) => ({ ...decodeEntry(m.data), partition: lease.partition, offset: m.seq, attempt: w.attempts, ...(w.suspect ? { suspect: true } : {}) }));
    }
    throw new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `the state of partition ${lease.partition} keeps changing under this reader`, { retryAfter: 1 });
  }

  async readAt(partition: number, offsets: readonly number[]): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    const subject = subjectOf(this.opts.stream, partition);
    for (const seq of [...offsets].sort((a, b) => a - b)) {
      // Offsets are the stream's sequences; a pruned one is not found.
      const m = await this.jsm.streams.getMessage(this.opts.stream, { seq }).catch((e: unknown) => {
        if (isNotFound(e)) return null;
        throw e;
      });
      if (m && m.subject === subject) out.push({ ...decodeEntry(m.data), partition, offset: m.seq, attempt: 0 });
    }
    return out;
  }

  async offsetForTime(partition: number, time: number): Promise<number | null> {
    const { state } = await this.jsm.streams.info(this.opts.stream);
    if (state.messages === 0) return null;
    // Offsets are the stream's sequences: the partition's record at or after one, by direct get.
    return searchOffsetForTime(state.first_seq, state.last_seq, time, async (seq) => {
      const m = await this.reader.firstAfter(partition, seq - 1);
      return m ? { o: m.seq, at: decodeEntry(m.data).receivedAt } : null;
    });
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

  // ---- positions, watermark, health -------------------------------------------------------

  async positions(group: string): Promise<PartitionPosition[]> {
    const now = this.now();
    return Promise.all(
      Array.from({ length: this.opts.partitions }, async (_, partition) => {
        const [head, { s }] = await Promise.all([this.reader.head(partition), this.getState(group, partition)]);
        const committed = s.committed;
        const [first, pending] = head > committed ? await Promise.all([this.reader.firstAfter(partition, committed), this.pendingOf(group, partition, committed, now)]) : [null, 0];
        const oldest = first ? decodeEntry(first.data).receivedAt : null;
        return { partition, head, committed, oldestUnackedAt: oldest, owner: s.expiresAt > now ? s.owner : null, pending };
      }),
    );
  }

  /** Per group and partition: the last count of records after the committed offset, and when it was made. */
  private readonly pendingCounts = new Map<string, { at: number; pending: number; refreshing?: boolean }>();
  /** Counts asked of the server, one at a time (see pendingOf). */
  private counting: Promise<unknown> = Promise.resolve();

  /**
   * Records of `partition` after `committed`: counted by the server (a consumer's num_pending,
   * reader.ts), since sequences are the stream's and their difference is not a count. The
   * server may walk part of the partition to count it (up to tens of ms on a stream of a million
   * records), so a partition is counted at most once a PENDING_REFRESH_MS, and this process
   * asks one count at a time: a stale count is answered at once while its refresh waits its turn
   * (a gauge, stale by that long and the queue); only a partition never counted waits for it.
   */
  private async pendingOf(group: string, partition: number, committed: number, now: number): Promise<number> {
    const key = `${group}\u0000${partition}`;
    const last = this.pendingCounts.get(key);
    if (last && (now - last.at < PENDING_REFRESH_MS || last.refreshing)) return last.pending;
    const counted = this.counting.then(() => this.reader.pending(partition, committed));
    this.counting = counted.catch(() => undefined);
    if (!last) {
      const pending = await counted;
      this.pendingCounts.set(key, { at: now, pending });
      return pending;
    }
    last.refreshing = true;
    counted.then(
      (pending) => this.pendingCounts.set(key, { at: now, pending }),
      () => this.pendingCounts.set(key, { ...last, refreshing: false }),
    );
    return last.pending;
  }

  async backlogByTenant(group: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let p = 0; p < this.opts.partitions; p++) {
      const [head, { s }] = await Promise.all([this.reader.head(p), this.getState(group, p)]);
      await this.reader.scan(p, s.committed + 1, head, (m) => {
        const tenant = decodeEntry(m.data).tenant;
        out.set(tenant, (out.get(tenant) ?? 0) + 1);
      });
    }
    return out;
  }

  async oldestUnapplied(applied: ReadonlyMap<number, number>): Promise<number | null> {
    let oldest: number | null = null;
    for (const at of this.inFlight.values()) if (oldest === null || at < oldest) oldest = at;
    const firsts = await Promise.all(Array.from({ length: this.opts.partitions }, (_, p) => this.reader.firstAfter(p, applied.get(p) ?? 0)));
    for (const m of firsts) {
      const at = m ? decodeEntry(m.data).receivedAt : null;
      if (at !== null && (oldest === null || at < oldest)) oldest = at;
    }
    return oldest;
  }

  async health(): Promise<LogHealth> {
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
      await this.reader.close();
      this.publisher.close();
      await this.nc.drain();
    } catch {
      await this.nc.close().catch(() => undefined);
    }
  }
}

async function casUpdate<T>(kv: KV, key: string, change: (prev: T | null) => T): Promise<void> {
  for (let i = 0; i < CAS_RETRIES; i++) {
    const e = await kv.get(key);
    const prev = e && e.operation === 'PUT' ? e.json<T>() : null;
    if ((await writeAt(kv, key, JSON.stringify(change(prev)), e?.revision ?? 0)) !== null) return;
  }
  throw new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `too much contention on ${key}`, { retryAfter: 1 });
}

/**
 * Writes `key` if it is still at `revision` (0: if it does not exist): the new revision, or
 * null when someone wrote first. Other failures throw.
 */
async function writeAt(kv: KV, key: string, data: string, revision: number): Promise<number | null> {
  try {
    return revision === 0 ? await kv.create(key, data) : await kv.update(key, data, revision);
  } catch (e: unknown) {
    if (/wrong last sequence|key exists/i.test(coerceError(e).message)) return null;
    throw e;
  }
}

/** KV keys allow a small alphabet: names go in as hex. */
function hexOf(s: string): string {
  return Buffer.from(s, 'utf8').toString('hex');
}

/** The key of a (group, partition)'s consumer in the reader. */
function readerKey(group: string, partition: number): string {
  return `${group}\u0000${partition}`;
}
