import { systemClock, type Clock } from '../../core/clock.js';
import { connect, DeliverPolicy, type ConsumerMessages, type JetStreamManager, type KV, type NatsConnection } from 'nats';
import { retryUntil } from '../../core/backoff.js';
import { coerceError, FencedError, SluiceError } from '../../core/errors.js';
import type { AppendOutcome, LogEntry, LogRecord, Receipt, Tally } from '../../core/types.js';
import type { Lease, Log, LogCapabilities, LogHealth, PartitionPosition } from '../../ports/log.js';
import { deliveryWindow, type DeliveryMarker } from '../delivery.js';
import { PartitionLag } from './lag.js';
import { CAS_RETRIES, PartitionStates } from './partition-state.js';
import { PipelinedPublisher } from './publisher.js';
import { StreamReader } from './reader.js';
import { searchOffsetForTime } from '../offset-for-time.js';
import { decodeEntry, encodeEntry, msgIdOf } from './records.js';
import { ensureStream, isNotFound, namesOf, partitionOfSubject, subjectOf } from './stream.js';
import { ReceiptTallies, TALLY_TTL_MS } from './tallies.js';

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
  /** Hears each failed attempt while opening waits for NATS (attempt 1, 2, …), to say so in the log. */
  onRetry?: (e: unknown, attempt: number) => void;
}

/** What a JetStream cluster answers while it forms or elects its leader: worth waiting for at start. */
const FORMING = /no suitable peers|temporarily unavailable|no responders|timeout/i;

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
 *   one atomic operation on the server (partition-state.ts).
 * - Reads go through a per-partition ephemeral consumer positioned at the committed offset
 *   (no acks: the position lives in the KV entry, written after the store commits). The
 *   log does not use JetStream's redelivery: it would redeliver out of order (the store
 *   dedupes by position, which needs order) and count an attempt against every record of a
 *   crashed batch, where the shared delivery window bisects down to the poison record.
 */
export class NatsLog implements Log {
  readonly name = 'nats';
  readonly capabilities: LogCapabilities;
  /** The clock of leases and memberships (epoch ms). */
  private readonly now: () => number;
  /** Leases, committed offsets, deliveries and members (partition-state.ts). */
  private readonly states: PartitionStates;
  /** Ingest receipts per tenant and minute (tallies.ts). */
  private readonly receipts: ReceiptTallies;
  /** Records after the committed offset, counted by the server (lag.ts). */
  private readonly lag: PartitionLag;
  private closed = false;
  private readonly inFlight = new Map<number, number>();
  private nextAppend = 1;

  private constructor(
    private readonly opts: NatsLogOptions,
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly reader: StreamReader,
    state: KV,
    tallies: KV,
    private readonly publisher: PipelinedPublisher,
  ) {
    const clock = opts.clock ?? systemClock;
    this.now = () => clock.now();
    this.capabilities = { partitions: opts.partitions, dedupeHorizonMs: Math.floor(opts.duplicateWindowMs / 2) };
    this.states = new PartitionStates(state, this.now);
    this.receipts = new ReceiptTallies(tallies);
    this.lag = new PartitionLag(reader);
  }

  /** Connects, and creates the stream and buckets if they do not exist (checking them if they do). */
  static async open(opts: NatsLogOptions): Promise<NatsLog> {
    // Every process of a deployment may start at once, NATS with them: servers that refuse
    // connections, or a cluster still forming ("no suitable peers", "temporarily unavailable",
    // no answer), are waited for until the deadline.
    const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
    const backoff = { deadline, baseMs: 250, capMs: 3_000, ...(opts.onRetry ? { onRetry: opts.onRetry } : {}) };
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
      if (receipt) this.receipts.add(receipt, duplicates);
      return out;
    } finally {
      this.inFlight.delete(id);
    }
  }

  async tallies(from: number, to: number): Promise<Tally[]> {
    return this.receipts.range(from, to);
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

  async acquire(group: string, partition: number, owner: string, ttlMs: number): Promise<Lease | null> {
    const lease = await this.states.acquire(group, partition, owner, ttlMs);
    // A new grant reads from the committed offset: the previous holder's consumer is dropped.
    if (lease) this.reader.drop(readerKey(group, partition));
    return lease;
  }

  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    try {
      return await this.states.withLease(lease, (s) => ({ ...s, expiresAt: this.now() + ttlMs }));
    } catch {
      return false;
    }
  }

  async release(lease: Lease): Promise<void> {
    try {
      await this.states.withLease(lease, (s) => ({ ...s, owner: null, expiresAt: 0 }));
    } catch {
      // The lease expires by itself.
    }
    this.reader.drop(readerKey(lease.group, lease.partition));
  }

  join(group: string, owner: string, ttlMs: number): Promise<number> {
    return this.states.join(group, owner, ttlMs);
  }

  leave(group: string, owner: string): Promise<void> {
    return this.states.leave(group, owner);
  }

  // ---- read and ack ---------------------------------------------------------------------

  async read(lease: Lease, max: number): Promise<LogRecord[]> {
    for (let i = 0; i < CAS_RETRIES; i++) {
      const { s, revision } = await this.states.get(lease.group, lease.partition, i === 0);
      if (!this.states.holds(lease, s, revision)) throw new FencedError(`lease on partition ${lease.partition} was lost (token ${lease.token})`);
      const start = s.committed + 1;
      const w = deliveryWindow(s.delivery, start, max);
      const msgs = (await this.reader.read(readerKey(lease.group, lease.partition), lease.partition, start, w.win)).filter((m) => w.to === null || m.seq <= w.to);
      if (msgs.length === 0) return [];
      const delivery: DeliveryMarker = { from: start, to: w.to ?? msgs[msgs.length - 1]!.seq, win: msgs.length, attempts: w.attempts };
      // The delivery is persisted before the records are returned: a record that crashes
      // the process is counted too. A concurrent renew moved the revision: try again.
      if ((await this.states.put(lease.group, lease.partition, { ...s, token: lease.token, delivery }, revision)) === null) continue;
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

  follow(onRecord: (record: LogRecord) => void): () => Promise<void> {
    let stopped = false;
    let messages: ConsumerMessages | null = null;
    // An ordered consumer (ephemeral, flow-controlled, recreated by the client after a gap)
    // from the next message on, over every partition's subject.
    // Begun again a second after it fails (NATS away at the time, say), until stopped.
    const running = (async () => {
      while (!stopped && !this.closed) {
        try {
          const consumer = await this.nc.jetstream().consumers.get(this.opts.stream, { filterSubjects: subjectOf(this.opts.stream, '*'), deliver_policy: DeliverPolicy.New });
          if (stopped) return;
          messages = await consumer.consume();
          for await (const m of messages) {
            if (stopped) break;
            const entry = decodeEntry(m.data);
            // As the ingest path publishes: events as received, not replays of dead letters.
            if (entry.replay !== undefined) continue;
            onRecord({ ...entry, partition: partitionOfSubject(m.subject), offset: m.seq, attempt: 0 });
          }
        } catch {
          // Tried again below.
        }
        if (!stopped) await new Promise((r) => setTimeout(r, 1_000).unref());
      }
    })();
    return async () => {
      stopped = true;
      await (messages as ConsumerMessages | null)?.close().catch(() => undefined);
      await running;
    };
  }

  async ack(lease: Lease, offset: number): Promise<boolean> {
    try {
      return await this.states.withLease(lease, (s) => ({
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
        const [head, { s }] = await Promise.all([this.reader.head(partition), this.states.get(group, partition)]);
        const committed = s.committed;
        const [first, pending] = head > committed ? await Promise.all([this.reader.firstAfter(partition, committed), this.lag.of(group, partition, committed, now)]) : [null, 0];
        const oldest = first ? decodeEntry(first.data).receivedAt : null;
        return { partition, head, committed, oldestUnackedAt: oldest, owner: s.expiresAt > now ? s.owner : null, pending };
      }),
    );
  }

  async backlogByTenant(group: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let p = 0; p < this.opts.partitions; p++) {
      const [head, { s }] = await Promise.all([this.reader.head(p), this.states.get(group, p)]);
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
    this.receipts.stop();
    try {
      // In-flight appends get their acks (or their timeout) first.
      const deadline = Date.now() + (this.opts.publishTimeoutMs ?? 10_000);
      while (this.publisher.pending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await this.receipts.flush();
      await this.reader.close();
      this.publisher.close();
      await this.nc.drain();
    } catch {
      await this.nc.close().catch(() => undefined);
    }
  }
}

/** The key of a (group, partition)'s consumer in the reader. */
function readerKey(group: string, partition: number): string {
  return `${group}\u0000${partition}`;
}
