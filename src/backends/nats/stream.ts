import { DiscardPolicy, nanos, RetentionPolicy, StorageType, type JetStreamManager } from 'nats';
import { SluiceError } from '../../core/errors.js';

/** The JetStream objects of a log, and the stream's creation and lookups. */

/** What a log named `stream` keeps in JetStream: the stream, and its two KV buckets (with the streams behind them). */
export function namesOf(stream: string): { stream: string; stateBucket: string; talliesBucket: string; streams: string[] } {
  const stateBucket = `${stream}_state`;
  const talliesBucket = `${stream}_tallies`;
  return { stream, stateBucket, talliesBucket, streams: [stream, `KV_${stateBucket}`, `KV_${talliesBucket}`] };
}

/** The subject of a partition; `*` for all of them. */
export function subjectOf(stream: string, partition: number | '*'): string {
  return `${stream}.p.${partition}`;
}

/** The partition a record's subject names (`<stream>.p.<p>`). */
export function partitionOfSubject(subject: string): number {
  return Number(subject.slice(subject.lastIndexOf('.') + 1));
}

export interface StreamSettings {
  stream: string;
  partitions: number;
  replicas: number;
  duplicateWindowMs: number;
  /** 0 = no limit. */
  retentionMs: number;
}

/** Creates the stream, or checks that an existing one has the same partitions (and updates its windows). */
export async function ensureStream(jsm: JetStreamManager, opts: StreamSettings): Promise<void> {
  const config = {
    name: opts.stream,
    subjects: [subjectOf(opts.stream, '*')],
    description: `sluice log; partitions=${opts.partitions}`,
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
  const had = partitionsOf(existing.config.description);
  if (had !== null && had !== opts.partitions) {
    throw new SluiceError(
      'SLUICE_ERR_CONFIG',
      `the stream ${opts.stream} was created with ${had} partitions, and the configuration says ${opts.partitions}: records would land in other partitions. Set partitions back to ${had}, or use another stream name.`,
    );
  }
  if (existing.config.duplicate_window !== config.duplicate_window || existing.config.max_age !== config.max_age) {
    await jsm.streams.update(opts.stream, { ...existing.config, duplicate_window: config.duplicate_window, max_age: config.max_age, allow_direct: true });
  }
}

/** The partitions a stream was created with (written in its description), or null for a stream sluice did not make. */
export function partitionsOf(description: string | undefined): number | null {
  const m = /partitions=(\d+)/.exec(description ?? '');
  return m ? Number(m[1]) : null;
}

/** The direct-get API: the client has it on every manager, its typings only on the class. */
interface DirectGet {
  getMessage(stream: string, query: { next_by_subj: string; seq: number }): Promise<{ seq: number; data: Uint8Array; time: Date }>;
}

export function directApi(jsm: JetStreamManager): DirectGet {
  return (jsm as JetStreamManager & { direct: DirectGet }).direct;
}

export function isNotFound(e: unknown): boolean {
  const err = e as { code?: unknown; api_error?: { code?: number }; message?: string };
  return err?.code === '404' || err?.code === 404 || err?.api_error?.code === 404 || /not found/i.test(err?.message ?? '');
}
