import type pg from 'pg';
import { coerceError, SluiceError } from '../../core/errors.js';
import { redactUrl } from '../../core/redact.js';
import type { AuditEntry, Catalog, KeyGrant, KeyInfo, KeyScope, NewTenant, Tenant, TenantSettings } from '../../ports/catalog.js';
import { checkKeyTeam, checkTenantName, KeyVerifier, mintKey, noTenant, parseSettings, tenantExists } from '../api-keys.js';
import { bumpEpoch, insertAudit } from './changes.js';
import { Executor, migrate, nextStep, openPool, postgresTarget, type Migration, type Sql } from './database.js';
import { PostgresAlerts } from './alerts.js';
import { PostgresDeadLetters } from './dead-letters.js';
import { PostgresRollouts } from './rollouts.js';
import { PostgresSavedQueries } from './saved-queries.js';
import { PostgresPipelines } from './pipelines.js';
import { PostgresSchemas } from './schemas.js';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE catalog_meta (k text PRIMARY KEY, v bigint NOT NULL);
      INSERT INTO catalog_meta (k, v) VALUES ('epoch', 0);
      CREATE TABLE tenants (name text PRIMARY KEY, created_at bigint NOT NULL, settings jsonb NOT NULL DEFAULT '{}');
      CREATE TABLE api_keys (
        id text PRIMARY KEY, tenant text NOT NULL REFERENCES tenants (name), scope text NOT NULL,
        hash text NOT NULL, created_at bigint NOT NULL, revoked_at bigint, team text
      );
      CREATE TABLE audit (
        id bigserial PRIMARY KEY, tenant text NOT NULL, at bigint NOT NULL, actor text NOT NULL,
        action text NOT NULL, subject text NOT NULL, detail text NOT NULL
      );
      CREATE INDEX audit_by_tenant ON audit (tenant, id);
      CREATE TABLE schemas (
        tenant text NOT NULL, type text NOT NULL, version integer NOT NULL, owner text NOT NULL, body text NOT NULL,
        created_at bigint NOT NULL, created_by text NOT NULL, forced_reason text,
        PRIMARY KEY (tenant, type, version)
      );
      CREATE TABLE dead_letters (
        tenant text NOT NULL, idem text NOT NULL, type text NOT NULL, reason text NOT NULL, message text NOT NULL,
        attempts integer NOT NULL, p integer NOT NULL, o bigint NOT NULL,
        first_seen bigint NOT NULL, last_seen bigint NOT NULL, origin text NOT NULL, payload text NOT NULL,
        received_at bigint NOT NULL, status text NOT NULL, replays integer NOT NULL, signature text NOT NULL,
        path text NOT NULL, schema_version integer,
        PRIMARY KEY (tenant, idem)
      );
      CREATE INDEX dead_letters_by_time ON dead_letters (tenant, last_seen, idem);
      CREATE INDEX dead_letters_by_signature ON dead_letters (tenant, signature);
      CREATE INDEX dead_letters_by_receipt ON dead_letters (received_at);
    `,
  },
  {
    // The console: saved queries per tenant, and when each key was last used.
    version: 2,
    sql: `
      CREATE TABLE saved_queries (
        tenant text NOT NULL, id text NOT NULL, name text NOT NULL, query text NOT NULL,
        created_at bigint NOT NULL, updated_at bigint NOT NULL, created_by text NOT NULL,
        PRIMARY KEY (tenant, id)
      );
      ALTER TABLE api_keys ADD COLUMN last_used_at bigint;
    `,
  },
  {
    // Alerts: rules, states, history, receivers, routing, silences, the outbox and the evaluation lease.
    version: 3,
    sql: `
      CREATE TABLE alert_rules (
        tenant text NOT NULL, name text NOT NULL, body text NOT NULL, created_at bigint NOT NULL, updated_at bigint NOT NULL,
        PRIMARY KEY (tenant, name)
      );
      CREATE TABLE alert_states (tenant text NOT NULL, rule text NOT NULL, severity text NOT NULL, body text NOT NULL, PRIMARY KEY (tenant, rule, severity));
      CREATE TABLE alert_history (
        id bigserial PRIMARY KEY, tenant text NOT NULL, rule text NOT NULL, severity text NOT NULL, at bigint NOT NULL, body text NOT NULL
      );
      CREATE INDEX alert_history_by_time ON alert_history (tenant, at, id);
      CREATE TABLE alert_objects (
        tenant text NOT NULL, kind text NOT NULL, name text NOT NULL, body text NOT NULL, updated_at bigint NOT NULL,
        PRIMARY KEY (tenant, kind, name)
      );
      CREATE TABLE alert_outbox (
        id text PRIMARY KEY, tenant text NOT NULL, receiver text NOT NULL, body text NOT NULL, created_at bigint NOT NULL,
        attempts integer NOT NULL DEFAULT 0, next_at bigint NOT NULL, last_error text, delivered_at bigint
      );
      CREATE INDEX alert_outbox_due ON alert_outbox (next_at) WHERE delivered_at IS NULL;
      CREATE TABLE alert_lease (name text PRIMARY KEY, owner text NOT NULL, expires_at bigint NOT NULL);
    `,
  },
  {
    // Transform pipelines: one versioned document of steps per tenant, and its redaction salt;
    // the lifecycle of dead-letter groups (the workbench).
    version: 4,
    sql: `
      CREATE TABLE pipelines (
        tenant text NOT NULL, version integer NOT NULL, steps text NOT NULL, created_at bigint NOT NULL, created_by text NOT NULL,
        PRIMARY KEY (tenant, version)
      );
      CREATE TABLE pipeline_salts (tenant text PRIMARY KEY, salt text NOT NULL);
      CREATE TABLE dlq_groups (
        tenant text NOT NULL, signature text NOT NULL, status text NOT NULL, owner text, history text NOT NULL, updated_at bigint NOT NULL,
        PRIMARY KEY (tenant, signature)
      );
    `,
  },
  {
    // Rollouts: one active per tenant and change kind; per-minute tallies of cohort and baseline; the diff.
    version: 5,
    sql: `
      CREATE TABLE rollouts (
        id text PRIMARY KEY, tenant text NOT NULL, kind text NOT NULL, state text NOT NULL, active boolean NOT NULL,
        rev integer NOT NULL, created_at bigint NOT NULL, updated_at bigint NOT NULL, doc text NOT NULL
      );
      CREATE UNIQUE INDEX rollouts_one_active ON rollouts (tenant, kind) WHERE active;
      CREATE INDEX rollouts_by_tenant ON rollouts (tenant, created_at);
      CREATE TABLE rollout_tallies (
        id text NOT NULL, minute bigint NOT NULL, side text NOT NULL, events bigint NOT NULL, dead bigint NOT NULL,
        dropped bigint NOT NULL, compared bigint NOT NULL, diffs bigint NOT NULL, cost_ms double precision NOT NULL,
        PRIMARY KEY (id, minute, side)
      );
      CREATE TABLE rollout_diffs (id text PRIMARY KEY, body text NOT NULL);
    `,
  },
  {
    // Ingest availability per tenant and minute of receipt: requests answered, and those answered 5xx.
    version: 6,
    sql: `
      CREATE TABLE ingest_minutes (
        tenant text NOT NULL, minute bigint NOT NULL, requests bigint NOT NULL, failed bigint NOT NULL,
        PRIMARY KEY (tenant, minute)
      );
    `,
  },
  {
    // The live pipeline version of each tenant: a version may be stored without being live (a
    // rollout's candidate). Until now the newest version was the live one.
    version: 7,
    sql: `
      CREATE TABLE pipeline_live (tenant text PRIMARY KEY, version integer NOT NULL);
      INSERT INTO pipeline_live (tenant, version) SELECT tenant, MAX(version) FROM pipelines GROUP BY tenant;
    `,
  },
  {
    // Notifications pruned from the outbox, counted per tenant and receiver (the metrics never go down).
    version: 8,
    sql: `
      CREATE TABLE alert_notification_totals (
        tenant text NOT NULL, receiver text NOT NULL, delivered bigint NOT NULL, failed bigint NOT NULL,
        PRIMARY KEY (tenant, receiver)
      );
      CREATE INDEX alert_outbox_delivered ON alert_outbox (delivered_at) WHERE delivered_at IS NOT NULL;
    `,
  },
];

/**
 * The Catalog on PostgreSQL (`--catalog postgres://…[?schema=S]`): tenants, keys, settings,
 * the audit log, schemas and dead letters, shared by every role process on every machine.
 * Writes are short transactions; the epoch is one row that each change moves in its own
 * transaction, so a process that reads a new epoch sees the change. Keys are read through
 * a cache (KeyVerifier) that keeps ingest going through a short outage.
 */
export class PostgresCatalog implements Catalog {
  readonly name = 'postgres';
  private readonly target;
  private pool: pg.Pool | null = null;
  private readonly exec: Executor;
  private readonly keys = new KeyVerifier(
    async (id) => {
      const rows = await this.exec.query<{ tenant: string; scope: KeyScope; hash: string; revoked_at: number | null; team: string | null; last_used_at: string | null }>(
        'SELECT tenant, scope, hash, revoked_at, team, last_used_at FROM api_keys WHERE id = $1',
        [id],
      );
      const r = rows[0];
      return r ? { tenant: r.tenant, scope: r.scope, team: r.team, hash: r.hash, revoked: r.revoked_at !== null, lastUsedAt: r.last_used_at === null ? null : Number(r.last_used_at) } : null;
    },
    async (id, at) => {
      await this.exec.query('UPDATE api_keys SET last_used_at = $1 WHERE id = $2', [at, id]);
    },
  );
  readonly deadLetters: PostgresDeadLetters;
  readonly schemas: PostgresSchemas;
  readonly savedQueries: PostgresSavedQueries;
  readonly alerts: PostgresAlerts;
  readonly pipelines: PostgresPipelines;
  readonly rollouts: PostgresRollouts;

  constructor(url: string) {
    this.target = postgresTarget(url);
    // The pool is made now and connects on first use; connect() migrates and checks it.
    this.pool = openPool(this.target, { max: 4, name: 'catalog', statementTimeoutMs: 10_000 });
    this.exec = new Executor(this.pool, (e) => this.unavailable(e));
    this.deadLetters = new PostgresDeadLetters(this.exec);
    this.schemas = new PostgresSchemas(this.exec);
    this.savedQueries = new PostgresSavedQueries(this.exec);
    this.alerts = new PostgresAlerts(this.exec);
    this.pipelines = new PostgresPipelines(this.exec);
    this.rollouts = new PostgresRollouts(this.exec);
  }

  private unavailable(e: unknown): SluiceError {
    return new SluiceError(
      'SLUICE_ERR_CATALOG_UNAVAILABLE',
      `the catalog at ${redactUrl(this.target.url)} is not reachable (${coerceError(e).message}); ${nextStep(e, 'start PostgreSQL or fix --catalog', this.target.url)}`,
      { retryAfter: 2, cause: e },
    );
  }

  /** Applies the catalog's migrations (under an advisory lock: many processes may start at once). */
  async connect(): Promise<void> {
    try {
      await migrate(this.pool!, this.target.schema, 'catalog', MIGRATIONS);
    } catch (e: unknown) {
      if (e instanceof SluiceError) throw e;
      throw this.unavailable(e);
    }
  }

  async createTenant(name: string): Promise<NewTenant> {
    checkTenantName(name);
    const now = Date.now();
    return this.exec.transaction(async (sql) => {
      const inserted = await sql('INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING name', [name, now]);
      if (inserted.length === 0) throw tenantExists(name);
      return {
        tenant: name,
        writeKey: await insertKey(sql, name, 'write', now),
        readKey: await insertKey(sql, name, 'read', now),
        adminKey: await insertKey(sql, name, 'admin', now),
      };
    });
  }

  async createKey(tenant: string, scope: KeyScope, team?: string, actor = 'cli'): Promise<string> {
    checkKeyTeam(scope, team);
    const now = Date.now();
    return this.exec.transaction(async (sql) => {
      if ((await sql('SELECT 1 FROM tenants WHERE name = $1', [tenant])).length === 0) throw noTenant(tenant);
      const key = await insertKey(sql, tenant, scope, now, team ?? null);
      const detail = JSON.stringify({ scope, team: team ?? null });
      await insertAudit(sql, { tenant, actor, action: 'key.create', subject: key.slice(0, 26), detail }, now);
      return key;
    });
  }

  async listKeys(tenant: string): Promise<KeyInfo[]> {
    const rows = await this.exec.query<{ id: string; tenant: string; scope: KeyScope; team: string | null; created_at: string; revoked_at: string | null; last_used_at: string | null }>(
      'SELECT id, tenant, scope, team, created_at, revoked_at, last_used_at FROM api_keys WHERE tenant = $1 ORDER BY created_at, id',
      [tenant],
    );
    const ms = (v: string | null) => (v === null ? null : Number(v));
    return rows.map((r) => ({ id: r.id, tenant: r.tenant, scope: r.scope, team: r.team, createdAt: Number(r.created_at), revokedAt: ms(r.revoked_at), lastUsedAt: ms(r.last_used_at) }));
  }

  async settings(tenant: string): Promise<TenantSettings> {
    const rows = await this.exec.query<{ settings: Partial<TenantSettings> }>('SELECT settings FROM tenants WHERE name = $1', [tenant]);
    if (!rows[0]) throw noTenant(tenant);
    return parseSettings(rows[0].settings);
  }

  async updateSettings(tenant: string, patch: Partial<TenantSettings>, actor: string): Promise<TenantSettings> {
    const now = Date.now();
    return this.exec.transaction(async (sql) => {
      const rows = await sql<{ settings: Partial<TenantSettings> }>('SELECT settings FROM tenants WHERE name = $1 FOR UPDATE', [tenant]);
      if (!rows[0]) throw noTenant(tenant);
      const before = parseSettings(rows[0].settings);
      const after = { ...before, ...patch };
      await sql('UPDATE tenants SET settings = $1 WHERE name = $2', [JSON.stringify(after), tenant]);
      await bumpEpoch(sql);
      await insertAudit(sql, { tenant, actor, action: 'tenant.settings', subject: tenant, detail: JSON.stringify({ before, after }) }, now);
      return after;
    });
  }

  async epoch(): Promise<number> {
    const rows = await this.exec.query<{ v: number }>(`SELECT v FROM catalog_meta WHERE k = 'epoch'`);
    return Number(rows[0]?.v ?? 0);
  }

  async audit(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<void> {
    await insertAudit(this.exec.query, { ...entry, detail: JSON.stringify(entry.detail ?? null) }, Date.now());
  }

  async auditLog(tenant: string, limit: number, subject?: string): Promise<AuditEntry[]> {
    const n = Math.max(1, Math.min(limit, 1000));
    const rows = await this.exec.query<{ id: number; tenant: string; at: number; actor: string; action: string; subject: string; detail: string }>(
      subject === undefined
        ? 'SELECT * FROM audit WHERE tenant = $1 ORDER BY id DESC LIMIT $2'
        : 'SELECT * FROM audit WHERE tenant = $1 AND subject = $3 ORDER BY id DESC LIMIT $2',
      subject === undefined ? [tenant, n] : [tenant, n, subject],
    );
    return rows.map((r) => ({ ...r, id: Number(r.id), at: Number(r.at), detail: JSON.parse(r.detail) as unknown }));
  }

  async getTenant(name: string): Promise<Tenant | null> {
    const rows = await this.exec.query<{ name: string; created_at: number }>('SELECT name, created_at FROM tenants WHERE name = $1', [name]);
    return rows[0] ? { name: rows[0].name, createdAt: Number(rows[0].created_at) } : null;
  }

  async listTenants(): Promise<Tenant[]> {
    const rows = await this.exec.query<{ name: string; created_at: number }>('SELECT name, created_at FROM tenants ORDER BY name');
    return rows.map((r) => ({ name: r.name, createdAt: Number(r.created_at) }));
  }

  async verifyKey(presented: string): Promise<KeyGrant | null> {
    return this.keys.verify(presented);
  }

  async revokeKey(keyId: string): Promise<boolean> {
    const rows = await this.exec.query('UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING id', [Date.now(), keyId]);
    this.keys.forget(keyId);
    return rows.length === 1;
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.end().catch(() => undefined);
  }
}

async function insertKey(sql: Sql, tenant: string, scope: KeyScope, now: number, team: string | null = null): Promise<string> {
  const k = mintKey(scope);
  await sql('INSERT INTO api_keys (id, tenant, scope, hash, created_at, team) VALUES ($1, $2, $3, $4, $5, $6)', [k.id, tenant, scope, k.hash, now, team]);
  return k.key;
}
