import type { DeadLetter, MinuteCount } from '../core/types.js';

/**
 * The Catalog: tenants, their keys and settings, and dead letters. Small transactional
 * writes; safe to use from several processes at once (the CLI creates tenants while the
 * server runs).
 */
export interface Catalog {
  readonly name: string;

  /** Creates a tenant and its keys. The plaintext keys are returned once and never stored. */
  createTenant(name: string): Promise<NewTenant>;

  getTenant(name: string): Promise<Tenant | null>;

  listTenants(): Promise<Tenant[]>;

  /**
   * Resolves a presented API key to its tenant and scope, comparing the secret's hash in
   * constant time. Null for a key that is unknown, malformed, revoked or does not match.
   */
  verifyKey(presented: string): Promise<KeyGrant | null>;

  /** Revokes a key by its id (the part before the secret). */
  revokeKey(keyId: string): Promise<boolean>;

  /** Records dead letters; recording the same (tenant, idempotency key) again updates it. */
  deadLetter(entries: readonly DeadLetter[]): Promise<void>;

  /** Dead letters per tenant and minute of their receipt by ingest, for minutes in [from, to). */
  deadLetteredByMinute(from: number, to: number): Promise<MinuteCount[]>;

  /** How many dead letters a tenant has, per reason. */
  deadLetterCounts(tenant: string): Promise<Record<string, number>>;

  /** Dead letters of a tenant, newest first. */
  listDeadLetters(tenant: string, limit: number): Promise<DeadLetterRow[]>;

  close(): Promise<void>;
}

/** write: send events; read: query; admin: operate the tenant (status, and later schemas, dead letters). */
export type KeyScope = 'write' | 'read' | 'admin';

export interface Tenant {
  name: string;
  createdAt: number;
}

export interface NewTenant {
  tenant: string;
  writeKey: string;
  readKey: string;
  adminKey: string;
}

export interface KeyGrant {
  tenant: string;
  scope: KeyScope;
  keyId: string;
}

export interface DeadLetterRow {
  tenant: string;
  type: string;
  idempotencyKey: string;
  reason: string;
  message: string;
  attempts: number;
  partition: number;
  offset: number;
  firstSeen: number;
  lastSeen: number;
  origin: string;
  payload: string;
}
