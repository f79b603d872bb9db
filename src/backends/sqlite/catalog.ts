import type { AuditEntry, Catalog, KeyGrant, KeyInfo, KeyScope, NewTenant, Tenant, TenantSettings } from '../../ports/catalog.js';
import { checkKeyTeam, checkTenantName, KeyVerifier, mintKey, noTenant, parseSettings, tenantExists, type StoredKey } from '../api-keys.js';
import { bumpEpoch, immediate, openDatabase, readEpoch, type SqliteDatabase } from './database.js';
import { SqliteAlerts } from './alerts.js';
import { SqliteDeadLetters } from './dead-letters.js';
import { SqliteRollouts } from './rollouts.js';
import { SqliteSavedQueries } from './saved-queries.js';
import { SqlitePipelines } from './pipelines.js';
import { SqliteSchemas } from './schemas.js';

export class SqliteCatalog implements Catalog {
  readonly name = 'sqlite';
  private readonly db: SqliteDatabase;
  private readonly ownsDb: boolean;
  private readonly keys = new KeyVerifier(
    async (id) => this.readKey(id),
    async (id, at) => {
      this.db.prepare('UPDATE api_keys SET last_used_at = ? WHERE id = ?').run(at, id);
    },
  );
  readonly deadLetters: SqliteDeadLetters;
  readonly schemas: SqliteSchemas;
  readonly savedQueries: SqliteSavedQueries;
  readonly alerts: SqliteAlerts;
  readonly pipelines: SqlitePipelines;
  readonly rollouts: SqliteRollouts;

  constructor(fileOrDb: string | SqliteDatabase) {
    this.ownsDb = typeof fileOrDb === 'string';
    this.db = typeof fileOrDb === 'string' ? openDatabase(fileOrDb) : fileOrDb;
    this.deadLetters = new SqliteDeadLetters(this.db);
    this.schemas = new SqliteSchemas(this.db);
    this.savedQueries = new SqliteSavedQueries(this.db);
    this.alerts = new SqliteAlerts(this.db);
    this.pipelines = new SqlitePipelines(this.db);
    this.rollouts = new SqliteRollouts(this.db);
  }

  async createTenant(name: string): Promise<NewTenant> {
    checkTenantName(name);
    const now = Date.now();
    return immediate(this.db, () => {
      const exists = this.db.prepare('SELECT 1 FROM tenants WHERE name = ?').get(name);
      if (exists) throw tenantExists(name);
      this.db.prepare('INSERT INTO tenants (name, created_at) VALUES (?, ?)').run(name, now);
      return {
        tenant: name,
        writeKey: this.insertKey(name, 'write', now),
        readKey: this.insertKey(name, 'read', now),
        adminKey: this.insertKey(name, 'admin', now),
      };
    });
  }

  private insertKey(tenant: string, scope: KeyScope, now: number, team: string | null = null): string {
    const k = mintKey(scope);
    this.db.prepare('INSERT INTO api_keys (id, tenant, scope, hash, created_at, team) VALUES (?, ?, ?, ?, ?, ?)').run(k.id, tenant, scope, k.hash, now, team);
    return k.key;
  }

  async createKey(tenant: string, scope: KeyScope, team?: string, actor = 'cli'): Promise<string> {
    checkKeyTeam(scope, team);
    if (!(await this.getTenant(tenant))) throw noTenant(tenant);
    const now = Date.now();
    return immediate(this.db, () => {
      const key = this.insertKey(tenant, scope, now, team ?? null);
      this.insertAudit({ tenant, actor, action: 'key.create', subject: key.slice(0, 26), detail: { scope, team: team ?? null } }, now);
      return key;
    });
  }

  async listKeys(tenant: string): Promise<KeyInfo[]> {
    const rows = this.db.prepare('SELECT id, tenant, scope, team, created_at, revoked_at, last_used_at FROM api_keys WHERE tenant = ? ORDER BY created_at, id').all(tenant) as {
      id: string;
      tenant: string;
      scope: KeyScope;
      team: string | null;
      created_at: number;
      revoked_at: number | null;
      last_used_at: number | null;
    }[];
    return rows.map((r) => ({ id: r.id, tenant: r.tenant, scope: r.scope, team: r.team, createdAt: r.created_at, revokedAt: r.revoked_at, lastUsedAt: r.last_used_at }));
  }

  async settings(tenant: string): Promise<TenantSettings> {
    const row = this.db.prepare('SELECT settings FROM tenants WHERE name = ?').get(tenant) as { settings: string } | undefined;
    if (!row) throw noTenant(tenant);
    return parseSettings(row.settings);
  }

  async updateSettings(tenant: string, patch: Partial<TenantSettings>, actor: string): Promise<TenantSettings> {
    const now = Date.now();
    return immediate(this.db, () => {
      const row = this.db.prepare('SELECT settings FROM tenants WHERE name = ?').get(tenant) as { settings: string } | undefined;
      if (!row) throw noTenant(tenant);
      const before = parseSettings(row.settings);
      const after = { ...before, ...patch };
      this.db.prepare('UPDATE tenants SET settings = ? WHERE name = ?').run(JSON.stringify(after), tenant);
      bumpEpoch(this.db);
      this.insertAudit({ tenant, actor, action: 'tenant.settings', subject: tenant, detail: { before, after } }, now);
      return after;
    });
  }

  async epoch(): Promise<number> {
    return readEpoch(this.db);
  }

  async audit(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<void> {
    this.insertAudit(entry, Date.now());
  }

  private insertAudit(e: Omit<AuditEntry, 'id' | 'at'>, at: number): void {
    this.db.prepare('INSERT INTO audit (tenant, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)').run(e.tenant, at, e.actor, e.action, e.subject, JSON.stringify(e.detail ?? null));
  }

  async auditLog(tenant: string, limit: number, subject?: string): Promise<AuditEntry[]> {
    const n = Math.max(1, Math.min(limit, 1000));
    const rows = (
      subject === undefined
        ? this.db.prepare('SELECT * FROM audit WHERE tenant = ? ORDER BY id DESC LIMIT ?').all(tenant, n)
        : this.db.prepare('SELECT * FROM audit WHERE tenant = ? AND subject = ? ORDER BY id DESC LIMIT ?').all(tenant, subject, n)
    ) as { id: number; tenant: string; at: number; actor: string; action: string; subject: string; detail: string }[];
    return rows.map((r) => ({ ...r, detail: JSON.parse(r.detail) as unknown }));
  }

  async getTenant(name: string): Promise<Tenant | null> {
    const row = this.db.prepare('SELECT name, created_at FROM tenants WHERE name = ?').get(name) as
      | { name: string; created_at: number }
      | undefined;
    return row ? { name: row.name, createdAt: row.created_at } : null;
  }

  async listTenants(): Promise<Tenant[]> {
    const rows = this.db.prepare('SELECT name, created_at FROM tenants ORDER BY name').all() as { name: string; created_at: number }[];
    return rows.map((r) => ({ name: r.name, createdAt: r.created_at }));
  }

  async verifyKey(presented: string): Promise<KeyGrant | null> {
    return this.keys.verify(presented);
  }

  private readKey(id: string): StoredKey | null {
    const row = this.db.prepare('SELECT tenant, scope, hash, revoked_at, team, last_used_at FROM api_keys WHERE id = ?').get(id) as
      | { tenant: string; scope: KeyScope; hash: string; revoked_at: number | null; team: string | null; last_used_at: number | null }
      | undefined;
    return row ? { tenant: row.tenant, scope: row.scope, team: row.team, hash: row.hash, revoked: row.revoked_at !== null, lastUsedAt: row.last_used_at } : null;
  }

  async revokeKey(keyId: string): Promise<boolean> {
    const changed = this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(Date.now(), keyId).changes;
    this.keys.forget(keyId);
    return changed === 1;
  }

  async close(): Promise<void> {
    if (!this.ownsDb) return;
    try {
      this.db.close();
    } catch {
      // Already closed.
    }
  }
}
