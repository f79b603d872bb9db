import { describe, expect, it } from 'vitest';
import { isFenced } from '../../src/core/errors.js';
import type { AppendOutcome } from '../../src/core/types.js';
import type { Log } from '../../src/ports/log.js';
import { lagOf } from '../../src/obs/lag.js';
import { entry } from '../helpers/entries.js';

/**
 * The Log conformance suite. Every backend runs it. `make` returns a fresh, empty log with
 * the given partition count and a controllable clock (`advance` moves it forward);
 * `reopen` closes and reopens the same log (durability).
 */
export interface LogHarness {
  log: Log;
  /** Moves the clock forward (a backend whose dedupe runs on the server's clock may sleep). */
  advance(ms: number): void | Promise<void>;
  reopen(): Promise<Log>;
}

export function logConformance(name: string, make: (partitions: number) => Promise<LogHarness>): void {
  describe(`Log conformance: ${name}`, () => {
    it('append.assigns-increasing-offsets-per-partition-in-order', async () => {
      const { log } = await make(4);
      const entries = Array.from({ length: 200 }, (_, i) => entry('t1', i, 4));
      const out = await log.append(entries);
      const seen = new Map<number, number[]>();
      out.forEach((o, i) => {
        expect(o.status).toBe('appended');
        if (o.status !== 'appended') return;
        expect(o.partition).toBe(entries[i]!.partition);
        seen.set(o.partition, [...(seen.get(o.partition) ?? []), o.offset]);
      });
      // Increasing within a partition; contiguous on some backends (SQLite), not on others
      // (a JetStream offset is the stream's sequence, shared by the partitions).
      for (const offsets of seen.values()) expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
      for (const offsets of seen.values()) expect(new Set(offsets).size).toBe(offsets.length);
      await log.close();
    });

    it('append.remembers-a-key-at-least-one-dedupe-horizon-and-at-most-two-then-it-is-new', async () => {
      const h = await make(4);
      const horizon = h.log.capabilities.dedupeHorizonMs;
      const batch = [entry('t1', 1, 4), entry('t1', 2, 4)];
      // The same batch three times: appended once.
      for (const expected of ['appended', 'duplicate', 'duplicate']) expect((await h.log.append(batch)).map((o) => o.status)).toEqual([expected, expected]);
      expect(await h.log.seen('t1', batch[0]!.idempotencyKey)).toBe(true);
      expect(await h.log.seen('t2', batch[0]!.idempotencyKey)).toBe(false);
      expect(await h.log.seen('t1', 'never-sent')).toBe(false);
      await h.advance(horizon);
      expect((await h.log.append(batch)).map((o) => o.status)).toEqual(['duplicate', 'duplicate']);
      await h.advance(2 * horizon);
      // Forgotten: the same key is a new event (why the horizon must outlast retries and replays).
      expect(await h.log.seen('t1', batch[0]!.idempotencyKey)).toBe(false);
      expect((await h.log.append(batch)).map((o) => o.status)).toEqual(['appended', 'appended']);
      await h.log.close();
    });

    it('tallies.sum-receipts-and-duplicates-per-tenant-and-minute', async () => {
      const { log } = await make(2);
      const minute = Date.UTC(2026, 10, 24, 10, 0);
      await log.append([entry('t1', 1, 2), entry('t1', 2, 2)], { tenant: 't1', receivedAt: minute + 1_000, received: 3, rejected: 1 });
      await log.append([entry('t1', 2, 2)], { tenant: 't1', receivedAt: minute + 59_000, received: 1, rejected: 0 });
      await log.append([], { tenant: 't2', receivedAt: minute + 60_000, received: 4, rejected: 4 });
      const byKey = (ts: { tenant: string; minute: number }[]) => [...ts].sort((a, b) => a.minute - b.minute || a.tenant.localeCompare(b.tenant));
      expect(byKey(await log.tallies(minute, minute + 120_000))).toEqual([
        { tenant: 't1', minute, received: 4, rejected: 1, duplicate: 1 },
        { tenant: 't2', minute: minute + 60_000, received: 4, rejected: 4, duplicate: 0 },
      ]);
      expect(await log.tallies(minute + 60_000, minute + 120_000)).toEqual([{ tenant: 't2', minute: minute + 60_000, received: 4, rejected: 4, duplicate: 0 }]);
      await log.close();
    });

    it('backlog.counts-unacknowledged-records-per-tenant', async () => {
      const { log } = await make(1);
      await log.append([...Array.from({ length: 5 }, (_, i) => entry('t1', i, 1)), ...Array.from({ length: 3 }, (_, i) => entry('t2', 100 + i, 1))]);
      expect(await log.backlogByTenant('g')).toEqual(new Map([['t1', 5], ['t2', 3]]));
      const lease = (await log.acquire('g', 0, 'a', 10_000))!;
      await log.read(lease, 6);
      expect(await log.ack(lease, 6)).toBe(true);
      expect(await log.backlogByTenant('g')).toEqual(new Map([['t2', 2]]));
      expect(await log.backlogByTenant('other')).toEqual(new Map([['t1', 5], ['t2', 3]]));
      await log.close();
    });

    it('append.dedupes-idempotency-keys-within-and-across-calls', async () => {
      const { log } = await make(4);
      const a = await log.append([entry('t1', 1, 4), entry('t1', 1, 4), entry('t1', 2, 4)]);
      expect(a.map((o) => o.status)).toEqual(['appended', 'duplicate', 'appended']);
      const b = await log.append([entry('t1', 2, 4), entry('t2', 2, 4)]);
      // Same key, other tenant: a different event.
      expect(b.map((o) => o.status)).toEqual(['duplicate', 'appended']);
      const concurrent = await Promise.all([log.append([entry('t1', 3, 4)]), log.append([entry('t1', 3, 4)])]);
      expect(concurrent.flat().map((o) => o.status).sort()).toEqual(['appended', 'duplicate']);
      await log.close();
    });

    it('read-at.answers-the-records-at-offsets-outside-any-group', async () => {
      const { log } = await make(2);
      await log.append(Array.from({ length: 6 }, (_, i) => entry('t1', i, 2)));
      const lease = (await log.acquire('g', 0, 'a', 10_000))!;
      const all = await log.read(lease, 100);
      const wanted = [all[2]!.offset, all[0]!.offset];
      const at = await log.readAt(0, wanted);
      expect(at.map((r) => [r.offset, r.idempotencyKey, r.properties])).toEqual([all[0]!, all[2]!].map((r) => [r.offset, r.idempotencyKey, r.properties]));
      // An offset with no record of this partition is missing from the answer.
      expect(await log.readAt(0, [1_000_000])).toEqual([]);
      // Reading at offsets moves no group.
      expect((await log.positions('g')).find((x) => x.partition === 0)!.committed).toBe(0);
      await log.close();
    });

    it('offset-for-time.finds-the-earliest-record-received-at-or-after-a-time-in-one-partition', async () => {
      const { log } = await make(2);
      const t0 = Date.UTC(2026, 10, 24, 10, 0);
      // Both partitions interleaved, one record a second each (on JetStream their sequences interleave too).
      const entries = Array.from({ length: 40 }, (_, i) => entry('t1', i, 2, { key: `k${i % 2}`, partition: i % 2, receivedAt: t0 + Math.floor(i / 2) * 1000 }));
      await log.append(entries);
      expect(await log.offsetForTime(0, t0 + 30_000)).toBeNull();
      const lease = (await log.acquire('g', 0, 'a', 10_000))!;
      const p0 = await log.read(lease, 100);
      expect(p0).toHaveLength(20);
      for (const i of [0, 1, 7, 19]) expect(await log.offsetForTime(0, t0 + i * 1000)).toBe(p0[i]!.offset);
      // Between two receive times: the later record.
      expect(await log.offsetForTime(0, t0 + 7_500)).toBe(p0[8]!.offset);
      expect(await log.offsetForTime(0, t0 - 60_000)).toBe(p0[0]!.offset);
      expect(await log.offsetForTime(0, t0 + 19_001)).toBeNull();
      expect(await log.offsetForTime(1, t0)).not.toBeNull();
      await log.close();
    });

    it('read.returns-records-after-the-committed-offset-and-ack-advances-it', async () => {
      const { log } = await make(1);
      await log.append(Array.from({ length: 10 }, (_, i) => entry('t1', i, 1)));
      const lease = (await log.acquire('g', 0, 'a', 10_000))!;
      const first = await log.read(lease, 4);
      expect(first.map((r) => r.offset)).toEqual([1, 2, 3, 4]);
      expect(first.every((r) => r.attempt === 1)).toBe(true);
      expect(first[0]!.idempotencyKey).toBe('k-0');
      expect(await log.ack(lease, 4)).toBe(true);
      const next = await log.read(lease, 100);
      expect(next.map((r) => r.offset)).toEqual([5, 6, 7, 8, 9, 10]);
      expect(await log.ack(lease, 10)).toBe(true);
      expect(await log.read(lease, 100)).toEqual([]);
      // Another group reads from the start.
      const other = (await log.acquire('g2', 0, 'a', 10_000))!;
      expect((await log.read(other, 3)).map((r) => r.offset)).toEqual([1, 2, 3]);
      await log.close();
    });

    it('read.bisects-an-unacked-delivery-until-a-poison-record-is-delivered-alone', async () => {
      const { log } = await make(1);
      await log.append(Array.from({ length: 5 }, (_, i) => entry('t1', i, 1)));
      const lease = (await log.acquire('g', 0, 'a', 10_000))!;
      const delivered = async () => (await log.read(lease, 5)).map((r) => [r.offset, r.attempt]);
      expect((await delivered()).length).toBe(5);
      // No ack: the consumer crashed somewhere in 1..5. Each redelivery halves the window.
      expect(await delivered()).toEqual([[1, 1], [2, 1]]);
      expect(await delivered()).toEqual([[1, 1]]);
      // Alone, the record's attempts climb.
      expect(await delivered()).toEqual([[1, 2]]);
      expect(await delivered()).toEqual([[1, 3]]);
      await log.ack(lease, 1);
      // Progress: the window doubles again, within the suspect range.
      expect(await delivered()).toEqual([[2, 1], [3, 1]]);
      await log.ack(lease, 3);
      expect(await delivered()).toEqual([[4, 1], [5, 1]]);
      await log.ack(lease, 5);
      await log.append([entry('t1', 10, 1), entry('t1', 11, 1)]);
      // Past the suspect range: whole batches again.
      expect(await delivered()).toEqual([[6, 1], [7, 1]]);
      await log.close();
    });

    it('lease.is-exclusive-until-it-expires-then-taken-over-with-a-greater-token', async () => {
      const h = await make(2);
      const { log } = h;
      await log.append([entry('t1', 1, 2, { partition: 0 })]);
      const a = (await log.acquire('g', 0, 'a', 1_000))!;
      expect(a).not.toBeNull();
      expect(await log.acquire('g', 0, 'b', 1_000)).toBeNull();
      expect(await log.renew(a, 1_000)).toBe(true);
      await h.advance(1_500);
      const b = (await log.acquire('g', 0, 'b', 1_000))!;
      expect(b).not.toBeNull();
      expect(b.token).toBeGreaterThan(a.token);
      // The old owner is fenced: reading throws, renew and ack say no.
      await expect(log.read(a, 10)).rejects.toSatisfy(isFenced);
      expect(await log.renew(a, 1_000)).toBe(false);
      expect(await log.ack(a, 1)).toBe(false);
      expect((await log.read(b, 10)).length).toBe(1);
      await log.close();
    });

    it('lease.release-lets-another-owner-acquire-at-once', async () => {
      const { log } = await make(1);
      const a = (await log.acquire('g', 0, 'a', 60_000))!;
      await log.release(a);
      const b = await log.acquire('g', 0, 'b', 60_000);
      expect(b?.token).toBeGreaterThan(a.token);
      await log.close();
    });

    it('join.counts-live-members-and-forgets-expired-ones', async () => {
      const h = await make(1);
      expect(await h.log.join('g', 'a', 1_000)).toBe(1);
      expect(await h.log.join('g', 'b', 1_000)).toBe(2);
      await h.advance(600);
      expect(await h.log.join('g', 'a', 1_000)).toBe(2);
      await h.advance(600);
      expect(await h.log.join('g', 'a', 1_000)).toBe(1);
      await h.log.leave('g', 'a');
      expect(await h.log.join('g', 'c', 1_000)).toBe(1);
      await h.log.close();
    });

    it('lag-counts-records-appended-since-within-two-readings-once-the-last-count-is-10-s-old', async () => {
      const h = await make(2);
      const lagOfPartition = async (p: number) => lagOf(await h.log.positions('g'), 0).partitions.find((x) => x.partition === p)!.lagEvents;
      await h.log.append([entry('t1', 1, 2, { partition: 0 })]);
      expect(await lagOfPartition(0)).toBe(1);
      await h.log.append([entry('t1', 2, 2, { partition: 0 }), entry('t1', 3, 2, { partition: 0 }), entry('t1', 4, 2, { partition: 1 })]);
      // (In steps under a second: the NATS harness sleeps for real past its dedupe horizon.)
      for (let i = 0; i < 11; i++) await h.advance(910);
      // NATS counts a partition at most every 10 s, and answers the last count while the next is
      // asked (one at a time per process): the second reading after that has it. SQLite counts at once.
      const readings: number[] = [];
      for (let i = 0; i < 20 && readings.at(-1) !== 3; i++) {
        readings.push(await lagOfPartition(0));
        if (readings.at(-1) !== 3) await new Promise((r) => setTimeout(r, 50));
      }
      expect(readings.at(-1)).toBe(3);
      expect(readings.filter((n) => n !== 3 && n !== 1)).toEqual([]);
      expect(await lagOfPartition(1)).toBe(1);
      await h.log.close();
    });

    it('positions-and-oldest-unapplied-describe-the-backlog', async () => {
      const { log } = await make(2);
      const offsetsOf = (outcomes: AppendOutcome[]): number[] => outcomes.map((o) => (o.status === 'appended' ? o.offset : -1));
      const [a1, a2] = offsetsOf(await log.append([entry('t1', 1, 2, { partition: 0, receivedAt: 1000 }), entry('t1', 2, 2, { partition: 0, receivedAt: 2000 })]));
      const [b1] = offsetsOf(await log.append([entry('t1', 3, 2, { partition: 1, receivedAt: 3000 })]));
      const lease = (await log.acquire('g', 0, 'a', 10_000))!;
      expect((await log.read(lease, 1)).map((r) => r.offset)).toEqual([a1]);
      await log.ack(lease, a1!);
      const pos = await log.positions('g');
      expect(pos.find((p) => p.partition === 0)).toMatchObject({ head: a2, committed: a1, oldestUnackedAt: 2000, owner: 'a' });
      expect(pos.find((p) => p.partition === 1)).toMatchObject({ head: b1, committed: 0, oldestUnackedAt: 3000 });
      // One record waits in each partition, whatever the offsets are (NATS: the stream's
      // sequence, shared by the partitions; partition 1 once counted a1 and a2 as its lag too).
      const lag = lagOf(pos, 4000);
      expect(lag.partitions.map((p) => [p.partition, p.lagEvents])).toEqual([
        [0, 1],
        [1, 1],
      ]);
      expect(lag.backlog).toBe(2);
      expect(await log.oldestUnapplied(new Map([[0, a1!]]))).toBe(2000);
      expect(await log.oldestUnapplied(new Map([[0, a2!]]))).toBe(3000);
      expect(await log.oldestUnapplied(new Map([[0, a2!], [1, b1!]]))).toBeNull();
      await log.close();
    });

    it('durability.records-offsets-and-dedupe-survive-a-reopen', async () => {
      const h = await make(2);
      const appended = await h.log.append(Array.from({ length: 20 }, (_, i) => entry('t1', i, 2)));
      const lease = (await h.log.acquire('g', 0, 'a', 10_000))!;
      const got = await h.log.read(lease, 3);
      await h.log.ack(lease, got[got.length - 1]!.offset);
      const heads = new Map<number, number>();
      for (const o of appended) if (o.status === 'appended') heads.set(o.partition, Math.max(heads.get(o.partition) ?? 0, o.offset));
      const log = await h.reopen();
      expect((await log.append([entry('t1', 5, 2)]))[0]!.status).toBe('duplicate');
      const pos = await log.positions('g');
      for (const p of pos) expect(p.head).toBe(heads.get(p.partition) ?? 0);
      expect(pos.find((p) => p.partition === 0)!.committed).toBe(got[got.length - 1]!.offset);
      const more = await log.append([entry('t1', 100, 2, { partition: 0 })]);
      expect(more[0]).toMatchObject({ status: 'appended' });
      expect((more[0] as { offset: number }).offset).toBeGreaterThan(pos.find((p) => p.partition === 0)!.head);
      await log.close();
    });
  });
}
