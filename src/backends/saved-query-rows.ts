import { randomBytes } from 'node:crypto';
import type { SavedQuery } from '../ports/saved-queries.js';

/** Saved queries as both catalog engines store them: one row each, the query as JSON text. */
export interface SavedQueryRow {
  tenant: string;
  id: string;
  name: string;
  query: string;
  created_at: number | string;
  updated_at: number | string;
  created_by: string;
}

export function newSavedQueryId(): string {
  return randomBytes(8).toString('hex');
}

export function toSavedQuery(r: SavedQueryRow): SavedQuery {
  return {
    id: r.id,
    tenant: r.tenant,
    name: r.name,
    query: JSON.parse(r.query) as Record<string, unknown>,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    createdBy: r.created_by,
  };
}
