import type { AlertStore } from './alerts.js';
import type { DeadLetterStore } from './dead-letters.js';
import type { RolloutStore } from './rollouts.js';
import type { SavedQueryStore } from './saved-queries.js';
import type { PipelineStore } from './pipelines.js';
import type { SchemaStore } from './schemas.js';

/**
 * The Catalog: tenants, their keys and settings, the audit log, schemas, dead letters and alerts. Small transactional
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

  /**
   * Issues a new key of `scope` for a tenant; `team` labels a schema key with the team whose
   * schemas it may publish. Audited as `key.create` by `actor` (a key id; "cli" by default).
   */
  createKey(tenant: string, scope: KeyScope, team?: string, actor?: string): Promise<string>;

  /** A tenant's keys, revoked ones too, oldest first; never their secrets (only hashes are stored). */
  listKeys(tenant: string): Promise<KeyInfo[]>;

  /** The tenant's settings (defaults for a tenant that never changed them). */
  settings(tenant: string): Promise<TenantSettings>;

  /** Changes some of a tenant's settings and records the change in the audit log. */
  updateSettings(tenant: string, patch: Partial<TenantSettings>, actor: string): Promise<TenantSettings>;

  /**
   * A number that changes whenever a schema is published or a tenant's settings change; cheap
   * to read, so that every process can notice and drop what it cached.
   */
  epoch(): Promise<number>;

  /** Appends to the audit log. */
  audit(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<void>;

  /** A tenant's audit log, newest first. */
  auditLog(tenant: string, limit: number, subject?: string): Promise<AuditEntry[]>;

  readonly deadLetters: DeadLetterStore;
  readonly schemas: SchemaStore;
  readonly savedQueries: SavedQueryStore;
  /** Alert rules, states, history, receivers, routing, silences and the notification outbox. */
  readonly alerts: AlertStore;
  /** Transform pipeline versions per tenant. */
  readonly pipelines: PipelineStore;
  readonly rollouts: RolloutStore;

  close(): Promise<void>;
}

/**
 * write: send events; read: query; admin: operate the tenant (status, schemas, dead letters,
 * backfills); schema: publish the schemas its team owns.
 */
export type KeyScope = 'write' | 'read' | 'admin' | 'schema';

/** A team's name, as schema keys and schema owners carry it. */
export const TEAM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** What ingest does with an event whose type has no schema. */
export type UnknownTypes = 'accept' | 'dead-letter' | 'reject';

/** A tenant's ingest limits; a field left out takes the configured default (`quotas.*`); 0 = unlimited. */
export interface TenantQuota {
  eventsPerSecond?: number;
  bytesPerSecond?: number;
  /** Events accepted but not yet processed by a worker. */
  backlog?: number;
}

export interface TenantSettings {
  unknownTypes: UnknownTypes;
  quota: TenantQuota;
  /**
   * The operator's ceilings (`sluice tenant set` on the server): the tenant's own admin key
   * (PATCH /v1/tenant) may lower its quota under them, not raise it past them, nor make it
   * unlimited or the default. Absent or 0: the server's configured default (`quotas.*`) is the
   * ceiling when it is not 0 (see http/routes/ops.ts checkCeiling).
   */
  quotaCeiling?: TenantQuota;
  /** Set while the dead-letter breaker holds the tenant's events; null when it flows. */
  paused: { since: number; reason: string } | null;
  /**
   * When the tenant was last resumed (ms since the epoch); absent if never. Workers start
   * their dead-letter breaker's window afresh when they see it change, so that failures
   * from before the fix never pause the tenant again.
   */
  resumedAt?: number;
}

export interface AuditEntry {
  id: number;
  tenant: string;
  at: number;
  /** Key id, or "cli" for the command line on the server's machine. */
  actor: string;
  action: string;
  subject: string;
  detail: unknown;
}

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

/** A key as listed: everything but its secret. Times are epoch ms. */
export interface KeyInfo {
  id: string;
  tenant: string;
  scope: KeyScope;
  team: string | null;
  createdAt: number;
  revokedAt: number | null;
  /** When the key last authenticated a request, to the minute (see KEY_TOUCH_MS); null: never. */
  lastUsedAt: number | null;
}

export interface KeyGrant {
  tenant: string;
  scope: KeyScope;
  keyId: string;
  /** The team of a schema key. */
  team?: string;
}

export type { DeadLetterRow } from './dead-letters.js';
