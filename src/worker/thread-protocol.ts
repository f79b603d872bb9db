import type { CountQuery, CountRow } from '../core/types.js';
import type { BackfillSpec } from '../ports/backfill.js';
import type { ConservationReply } from '../obs/conservation.js';
import type { StoreCall } from '../query/reader.js';

export type { ConservationReply };

/** Messages between the HTTP thread and the store thread of `sluice up`. */
export type ToStoreThread =
  | { op: 'notify' }
  | { op: 'counts'; id: number; query: CountQuery }
  | { op: 'health'; id: number }
  | { op: 'recent'; id: number; tenant: string; type: string; limit: number }
  | { op: 'backfill-start'; id: number; spec: BackfillSpec }
  | { op: 'backfill-list'; id: number; tenant: string }
  | { op: 'metrics'; id: number }
  | { op: 'conservation'; id: number }
  | { op: 'tenants'; tenants: string[] }
  | { op: 'call'; id: number; method: StoreCall; args: unknown[] }
  | { op: 'begin' }
  | { op: 'stop' };

export type FromStoreThread =
  | { op: 'ready' }
  | { op: 'fatal'; message: string }
  | { op: 'stopped' }
  | { op: 'processed'; counts: [string, number][] }
  | { op: 'unavailable'; message: string }
  | { op: 'reply'; id: number; ok: true; value: unknown }
  | { op: 'reply'; id: number; ok: false; code: string; message: string; field?: string };

export interface CountsReply {
  rows: CountRow[];
  applied: [number, number][];
}
