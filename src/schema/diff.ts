/** A structural diff of two JSON values, for the audit log and `sluice schema diff`. Pure. */

import { escapePointer, isJsonObject } from '../core/event.js';

export interface Change {
  op: 'add' | 'remove' | 'change';
  /** JSON pointer into the schema. */
  path: string;
  from?: unknown;
  to?: unknown;
}



export function diff(a: unknown, b: unknown, path = ''): Change[] {
  if (isJsonObject(a) && isJsonObject(b)) {
    const out: Change[] = [];
    for (const k of Object.keys(a)) {
      if (!(k in b)) out.push({ op: 'remove', path: `${path}/${escapePointer(k)}`, from: a[k] });
      else out.push(...diff(a[k], b[k], `${path}/${escapePointer(k)}`));
    }
    for (const k of Object.keys(b)) if (!(k in a)) out.push({ op: 'add', path: `${path}/${escapePointer(k)}`, to: b[k] });
    return out;
  }
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (a === undefined) return [{ op: 'add', path, to: b }];
  return [{ op: 'change', path, from: a, to: b }];
}

/** One line per change, as `sluice schema diff` prints them. */
export function formatDiff(changes: readonly Change[]): string {
  if (changes.length === 0) return '(no changes)';
  const show = (v: unknown) => JSON.stringify(v);
  return changes
    .map((c) => (c.op === 'add' ? `+ ${c.path || '/'}: ${show(c.to)}` : c.op === 'remove' ? `- ${c.path || '/'}: ${show(c.from)}` : `~ ${c.path || '/'}: ${show(c.from)} → ${show(c.to)}`))
    .join('\n');
}
