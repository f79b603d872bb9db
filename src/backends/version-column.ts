import type { VersionOf } from '../ports/store.js';

/**
 * The column of the raw events (in every store) that records the version of each pipeline
 * (Store.producedBy, Store.withdraw): a fixed name, safe to splice into SQL.
 */
export function versionColumn(of: VersionOf = 'pipeline'): 'pipeline_version' | 'operator_version' {
  return of === 'operator' ? 'operator_version' : 'pipeline_version';
}
