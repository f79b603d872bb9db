/**
 * The alerts' part of the Catalog: rules, the current state of every alert, the history of
 * transitions, the notification objects (receivers, routing, silences) and the outbox of
 * notifications to deliver. Bodies are JSON values that the alerts domain (src/alerts/)
 * parses; the store keeps them as they are.
 *
 * Every change of a rule or of a notification object is written with its audit entry in one
 * transaction. `saveEvaluation` writes an evaluation's states, transitions and notifications
 * in one transaction: a crash leaves either all of them or none, so a notification is queued
 * exactly once per change of state and delivered from the outbox after a restart.
 */
export interface AlertStore {
  /** Creates or replaces a rule; `created` is false for a replacement. */
  putRule(tenant: string, name: string, body: unknown, actor: string): Promise<{ created: boolean; rule: StoredRule }>;
  getRule(tenant: string, name: string): Promise<StoredRule | null>;
  /** A tenant's rules by name; every tenant's with `tenant` null (the evaluation). */
  listRules(tenant: string | null): Promise<StoredRule[]>;
  /** Deletes a rule and its alerts' states (the history stays). False when there was none. */
  deleteRule(tenant: string, name: string, actor: string): Promise<boolean>;

  /** The alerts' current states (JSON, see alerts/state.ts), of one tenant or of all (null). */
  states(tenant: string | null): Promise<StoredAlertState[]>;
  /** One evaluation's result, in one transaction (see above). */
  saveEvaluation(e: EvaluationWrite): Promise<void>;
  /** Transitions with from ≤ at < to (of one rule, with `rule`), oldest first, at most `limit`. */
  history(tenant: string, from: number, to: number, limit: number, rule?: string): Promise<StoredTransition[]>;

  /** Receivers, routing and silences: one JSON object per (tenant, kind, name). */
  putObject(tenant: string, kind: AlertObjectKind, name: string, body: unknown, actor: string): Promise<{ created: boolean }>;
  getObject(tenant: string, kind: AlertObjectKind, name: string): Promise<unknown | null>;
  listObjects(tenant: string, kind: AlertObjectKind): Promise<{ name: string; body: unknown }[]>;
  deleteObject(tenant: string, kind: AlertObjectKind, name: string, actor: string): Promise<boolean>;

  /**
   * Notifications due at `now` (next_at ≤ now, not delivered), at most `limit`: each
   * (tenant, receiver)'s oldest first, receivers in turn (every receiver's oldest, then every
   * receiver's second…), so that one receiver's backlog does not fill the page.
   */
  dueNotifications(now: number, limit: number): Promise<OutboxRow[]>;
  /** Marks one delivered; false when it already was (another process sent it). */
  markDelivered(id: string, at: number): Promise<boolean>;
  /** Records a failed attempt and when to try again. */
  markFailed(id: string, error: string, nextAt: number): Promise<void>;
  /**
   * Deletes up to `limit` notifications delivered before `deliveredBefore` (epoch ms), oldest
   * delivery first, and adds them to the per-receiver totals in the same transaction, so
   * `notificationCounts` never decreases. A notification not delivered yet is never deleted.
   * Returns how many were deleted (fewer than `limit`: none older is left).
   */
  pruneNotifications(deliveredBefore: number, limit: number): Promise<number>;
  /**
   * Takes or renews the evaluation lease for `owner` until now + ttlMs: true when `owner`
   * holds it (it was free, expired or already its own). Exactly one process evaluates and
   * delivers at a time; another takes over within `ttlMs` of the holder's last renewal.
   */
  lease(owner: string, ttlMs: number, now: number): Promise<boolean>;
  /** Adds to the ingest minutes (see IngestMinute): each row's counts are added to its (tenant, minute), in one transaction. */
  addIngestMinutes(rows: readonly IngestMinute[]): Promise<void>;
  /** A tenant's ingest minutes in [from, to), oldest first; a minute with no request has no row. */
  ingestMinutes(tenant: string, from: number, to: number): Promise<IngestMinute[]>;
  /** Per tenant and receiver: notifications delivered, and failed attempts, since the outbox began (never decreasing). */
  notificationCounts(): Promise<{ tenant: string; receiver: string; delivered: number; failed: number }[]>;
}

/** `group`: the notification state of one alert group (written by the evaluation, not by users). */
export type AlertObjectKind = 'receiver' | 'routing' | 'silence' | 'group';

export interface StoredRule {
  tenant: string;
  name: string;
  body: unknown;
  createdAt: number;
  updatedAt: number;
}

export interface StoredAlertState {
  tenant: string;
  rule: string;
  severity: string;
  body: unknown;
}

export interface StoredTransition {
  tenant: string;
  rule: string;
  severity: string;
  at: number;
  body: unknown;
}

/** A notification to deliver. `id` is unique (a retry of the evaluation does not queue it twice). */
export interface OutboxRow {
  id: string;
  tenant: string;
  receiver: string;
  body: unknown;
  createdAt: number;
  attempts: number;
  nextAt: number;
  lastError: string | null;
  deliveredAt: number | null;
}

export interface EvaluationWrite {
  tenant: string;
  states: { rule: string; severity: string; body: unknown }[];
  transitions: { rule: string; severity: string; at: number; body: unknown }[];
  /** Queued unless a notification with the same id exists. */
  notifications: { id: string; receiver: string; body: unknown; nextAt: number }[];
  /** Objects written beside (the routing's per-group state, kind "group"); a null body deletes. */
  objects: { kind: AlertObjectKind; name: string; body: unknown }[];
}

/**
 * Per tenant and minute of receipt (epoch ms of its start): ingest requests answered, and
 * those answered 5xx (the server's fault: an error, or refused as saturated with 503). The
 * SLI of the built-in rule `sluice_ingest_availability`. Requests refused before their key
 * was known (401) belong to no tenant and are not counted.
 */
export interface IngestMinute {
  tenant: string;
  minute: number;
  requests: number;
  failed: number;
}
