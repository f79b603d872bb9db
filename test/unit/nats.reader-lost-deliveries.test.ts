import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { StreamReader } from '../../src/backends/nats/reader.js';
import { subjectOf } from '../../src/backends/nats/stream.js';
import { NATS_URL, natsAvailable, uniqueName } from '../helpers/services.js';

/**
 * A reader's consumer whose deliveries went to a pull that had ended (under load: a pull given
 * up, answered late) numbers the next delivery past the gap, and the reader reads again; but at
 * a partition's tail no next delivery comes, and the consumer answered empty for ever while
 * the records waited (the scale-out quota test: a partition's last 29 records unread for
 * minutes, nothing logged). An empty pull is now checked against the partition itself.
 */
const ready = await natsAvailable();
let nc: NatsConnection;
const stream = uniqueName('sluice_reader');

beforeAll(async () => {
  if (!ready) return;
  nc = await connect({ servers: NATS_URL });
  // Direct gets allowed, as the log's stream (stream.ts).
  await (await nc.jetstreamManager()).streams.add({ name: stream, subjects: [subjectOf(stream, '*')], allow_direct: true });
});
afterAll(async () => {
  if (!ready) return;
  await (await nc.jetstreamManager()).streams.delete(stream).catch(() => undefined);
  await nc.close();
});

it.runIf(ready || process.env.CI)('nats.reader.records-a-consumer-delivered-to-a-pull-that-had-ended-are-read-at-the-tail', async () => {
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  const reader = new StreamReader(jsm, js, stream, 0);
  for (let i = 0; i < 3; i++) await js.publish(subjectOf(stream, 0), new TextEncoder().encode(`r${i}`));
  const first = await reader.read('k', 0, 1, 100);
  expect(first.map((m) => m.seq)).toEqual([1, 2, 3]);
  // Two more records, delivered by the reader's consumer to a pull that is not the reader's.
  for (let i = 3; i < 5; i++) await js.publish(subjectOf(stream, 0), new TextEncoder().encode(`r${i}`));
  const consumer = (await jsm.consumers.list(stream).next()).find((c) => c.config.filter_subject === subjectOf(stream, 0))!;
  const lost: number[] = [];
  for await (const m of js.fetch(stream, consumer.name, { batch: 2, no_wait: true })) lost.push(m.seq);
  expect(lost).toEqual([4, 5]);
  // The reader asks from 4: the consumer has nothing more to give, the partition has 4 and 5.
  expect((await reader.read('k', 0, 4, 100)).map((m) => m.seq)).toEqual([4, 5]);
  await reader.close();
});

it.runIf(ready || process.env.CI)('nats.reader.a-partition-found-empty-is-checked-again-once-the-stream-has-grown', async () => {
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  const reader = new StreamReader(jsm, js, stream, 0);
  const subject = subjectOf(stream, 1);
  const publish = async (n: number): Promise<number[]> => {
    const seqs: number[] = [];
    for (let i = 0; i < n; i++) seqs.push((await js.publish(subject, new TextEncoder().encode(`p1-${i}`))).seq);
    return seqs;
  };
  const first = await publish(2);
  expect((await reader.read('p1', 1, first[0]!, 100)).map((m) => m.seq)).toEqual(first);
  // Empty at the tail, twice: found empty twice with the stream as it was, the partition is not asked again until the stream grows (or 30 s).
  const next = first[1]! + 1;
  expect(await reader.read('p1', 1, next, 100)).toEqual([]);
  expect(await reader.read('p1', 1, next, 100)).toEqual([]);
  // Records appended, and delivered by the reader's consumer to a pull that is not the reader's.
  const more = await publish(2);
  const consumer = (await jsm.consumers.list(stream).next()).find((c) => c.config.filter_subject === subject)!;
  const lost: number[] = [];
  for await (const m of js.fetch(stream, consumer.name, { batch: 2, no_wait: true })) lost.push(m.seq);
  expect(lost).toEqual(more);
  // The stream grew since the partition was found empty: it is checked, and the records read.
  expect((await reader.read('p1', 1, next, 100)).map((m) => m.seq)).toEqual(more);
  await reader.close();
});
