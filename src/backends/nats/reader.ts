import { randomBytes } from 'node:crypto';
import { AckPolicy, DeliverPolicy, nanos, type ConsumerInfo, type JetStreamClient, type JetStreamManager } from 'nats';
import { SluiceError } from '../../core/errors.js';
import { directApi, isNotFound, subjectOf } from './stream.js';

/** A record as read: its stream sequence, its bytes, when the server stored it. */
export interface Fetched {
  seq: number;
  data: Uint8Array;
  /** The consumer's delivery number (pulls only). */
  delivered?: number;
  /** Epoch ms. */
  time: number;
}

interface Cursor {
  name: string;
  /** Stream sequence the consumer delivers next (after the last one it delivered). */
  next: number;
  /** The consumer's own count of deliveries so far: each message delivered to us is the next one. */
  delivered: number;
  /** When an empty pull of this consumer was last checked against the partition itself (Date.now() ms). */
  checkedAt: number;
  /**
   * The stream's last sequence up to which the partition was found to hold nothing from `next`
   * on, twice in a row (0: not yet), and when that was (Date.now() ms); see StreamReader.read.
   */
  checkedUpTo: number;
  confirmedAt: number;
  /** The stream's last sequence at the last check that found nothing, waiting for a second one. */
  emptyOnceAt: number;
}

/** How long a partition found empty (twice) is not checked again while the stream does not grow (ms). */
const EMPTY_TRUST_MS = 30_000;

/** How often an empty pull is checked against the partition (ms; see StreamReader.read). */
const EMPTY_CHECK_MS = 1_000;

const PULL_TIMEOUT_MS = 3_000;
/** After a consumer failure: how long reads go direct, and how many records one such read takes. */
const DIRECT_MODE_MS = 10_000;
const DIRECT_BATCH = 200;

/** A consumer delivered to someone else (see read): the read is retried from its start. */
class SkippedDelivery extends SluiceError {}

/**
 * Reading a log's stream: the records of a partition from a sequence on, whole ranges, and
 * single lookups. Reads go through an ephemeral consumer per reader key (no acks: the
 * position is the caller's), reused while reads follow each other; while consumers cannot be
 * made or do not answer (a server died, the cluster re-elects), through direct gets, which
 * any replica answers.
 */
export class StreamReader {
  private readonly cursors = new Map<string, Cursor>();
  private directUntil = 0;
  /** The stream's last sequence as last asked (shared by every partition's check), and when (Date.now() ms). */
  private streamLast: { seq: number; at: number } | null = null;

  constructor(
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly stream: string,
    /** How often an empty pull is checked against the partition (ms; EMPTY_CHECK_MS by default). */
    private readonly emptyCheckMs = EMPTY_CHECK_MS,
  ) {}

  /** Up to `max` records of a partition from sequence `start`, through the consumer kept under `key`. */
  async read(key: string, partition: number, start: number, max: number): Promise<Fetched[]> {
    if (Date.now() < this.directUntil) return this.directRead(partition, start, Math.min(max, DIRECT_BATCH));
    let cursor = this.cursors.get(key);
    try {
      if (!cursor || cursor.next !== start) {
        if (cursor) this.drop(key);
        cursor = { name: (await this.createConsumer(subjectOf(this.stream, partition), start)).name, next: start, delivered: 0, checkedAt: Date.now(), checkedUpTo: 0, confirmedAt: 0, emptyOnceAt: 0 };
        this.cursors.set(key, cursor);
      }
      const out = await this.pull(cursor.name, max);
      // The consumer numbers its deliveries: a gap means some went elsewhere (a pull that
      // was given up, answered late), and the records in it would be skipped. Never trust
      // such a consumer: read again from `start` through a new one.
      for (const m of out) {
        if (m.delivered !== ++cursor.delivered) {
          this.drop(key);
          throw new SkippedDelivery('SLUICE_ERR_LOG_UNAVAILABLE', `the consumer of partition ${partition} skipped a delivery; reading again from ${start}`, { retryAfter: 0 });
        }
      }
      if (out.length > 0) cursor.next = out[out.length - 1]!.seq + 1;
      else if (Date.now() - cursor.checkedAt >= this.emptyCheckMs) {
        // A consumer's deliveries that never reached us (to a pull that had ended) show as a
        // gap in its numbering when the next one comes; at a partition's tail no next one comes,
        // and the consumer answers empty for ever while records wait (seen under load: a
        // partition's last 29 records unread for minutes). So an empty pull is checked against
        // the partition itself, at most once a second per consumer: records there, and the
        // consumer is not trusted again. Unless nothing was appended to the stream since the
        // partition was found empty twice in a row (a direct get may be answered by a replica
        // that lags) within the last EMPTY_TRUST_MS: on an idle stream that is one question a
        // second for all partitions instead of one per partition.
        const now = Date.now();
        cursor.checkedAt = now;
        const last = await this.lastSeq();
        if (last > cursor.checkedUpTo || now - cursor.confirmedAt >= EMPTY_TRUST_MS) {
          if ((await this.firstAfter(partition, start - 1)) !== null) {
            this.drop(key);
            return this.directRead(partition, start, Math.min(max, DIRECT_BATCH));
          }
          // `last` was read before the check: a record appended since has a later sequence, and makes the next check ask.
          if (cursor.emptyOnceAt === last) {
            cursor.checkedUpTo = last;
            cursor.confirmedAt = now;
          }
          cursor.emptyOnceAt = last;
        }
      }
      return out;
    } catch (e: unknown) {
      if (e instanceof SkippedDelivery) throw e;
      // A pull that gets no answer went to a consumer on a server that is gone (ephemeral
      // consumers live on one server), and a consumer that cannot be made waits on an
      // election. Drop every consumer (their neighbours are likely gone too) and read
      // directly for a while.
      for (const k of [...this.cursors.keys()]) this.drop(k);
      this.directUntil = Date.now() + DIRECT_MODE_MS;
      return this.directRead(partition, start, Math.min(max, DIRECT_BATCH));
    }
  }

  /** Forgets the consumer kept under `key` (and deletes it on the server, best effort). */
  drop(key: string): void {
    const cursor = this.cursors.get(key);
    if (!cursor) return;
    this.cursors.delete(key);
    void this.jsm.consumers.delete(this.stream, cursor.name).catch(() => undefined);
  }

  /** Calls `visit` for every record of `partition` (every partition: '*') with sequence in [from, to], through a throwaway consumer. */
  async scan(partition: number | '*', from: number, to: number, visit: (m: Fetched) => void): Promise<void> {
    if (to < from) return;
    const { name } = await this.createConsumer(subjectOf(this.stream, partition), from);
    try {
      for (;;) {
        const msgs = await this.pull(name, 1_000);
        for (const m of msgs) if (m.seq <= to) visit(m);
        if (msgs.length === 0 || msgs[msgs.length - 1]!.seq >= to) return;
      }
    } finally {
      await this.jsm.consumers.delete(this.stream, name).catch(() => undefined);
    }
  }

  /** The sequence of a partition's newest record; 0 when it has none. */
  async head(partition: number): Promise<number> {
    try {
      return (await this.jsm.streams.getMessage(this.stream, { last_by_subj: subjectOf(this.stream, partition) })).seq;
    } catch (e: unknown) {
      if (isNotFound(e)) return 0;
      throw e;
    }
  }

  /**
   * How many records of `partition` the stream holds after sequence `after`: the `num_pending`
   * of a consumer made for the question (filtered on the partition's subject, from `after` +
   * 1) and deleted at once. Sequences are the stream's, shared by all partitions, so their
   * difference is not a count.
   */
  async pending(partition: number, after: number): Promise<number> {
    const { name, info } = await this.createConsumer(subjectOf(this.stream, partition), after + 1);
    void this.jsm.consumers.delete(this.stream, name).catch(() => undefined);
    return info.num_pending;
  }

  /** The stream's last sequence (0 when empty), asked at most once per `emptyCheckMs`. */
  private async lastSeq(): Promise<number> {
    const now = Date.now();
    if (this.streamLast && now - this.streamLast.at < this.emptyCheckMs) return this.streamLast.seq;
    const seq = (await this.jsm.streams.info(this.stream)).state.last_seq;
    this.streamLast = { seq, at: now };
    return seq;
  }

  /** The first record of a partition after sequence `after`, or null. */
  async firstAfter(partition: number, after: number): Promise<Fetched | null> {
    try {
      const m = await directApi(this.jsm).getMessage(this.stream, { next_by_subj: subjectOf(this.stream, partition), seq: after + 1 });
      return { seq: m.seq, data: m.data, time: m.time.getTime() };
    } catch (e: unknown) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  /** Deletes every consumer this reader made. Must not throw. */
  async close(): Promise<void> {
    const names = [...this.cursors.values()].map((c) => c.name);
    this.cursors.clear();
    await Promise.all(names.map((name) => this.jsm.consumers.delete(this.stream, name).catch(() => undefined)));
  }

  /** Up to `max` records of a partition from `start`, one direct get each. */
  private async directRead(partition: number, start: number, max: number): Promise<Fetched[]> {
    const out: Fetched[] = [];
    let seq = start;
    while (out.length < max) {
      let m: Fetched | null;
      try {
        m = await this.firstAfter(partition, seq - 1);
      } catch (e: unknown) {
        if (out.length > 0) break;
        throw e;
      }
      if (!m) break;
      out.push(m);
      seq = m.seq + 1;
    }
    return out;
  }

  /**
   * One pull of up to `batch` messages that are there now. The client would wait for ever
   * for the answer of a consumer whose server died: the pull is bounded by a timer.
   */
  private async pull(consumer: string, batch: number): Promise<Fetched[]> {
    const out: Fetched[] = [];
    const iter = this.js.fetch(this.stream, consumer, { batch, no_wait: true });
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
      throw new SluiceError('SLUICE_ERR_LOG_UNAVAILABLE', `a pull from the stream ${this.stream} got no answer within ${PULL_TIMEOUT_MS} ms (a NATS server is away?); retrying`, {
        retryAfter: 1,
      });
    }
    return out;
  }

  private async createConsumer(filter: string, start: number): Promise<{ name: string; info: ConsumerInfo }> {
    const name = `sluice_${randomBytes(8).toString('hex')}`;
    const info = await this.jsm.consumers.add(this.stream, {
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
    return { name, info };
  }
}
