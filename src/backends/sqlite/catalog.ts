import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { SluiceError } from '../../core/errors.js';
import { TEAM_NAME, type AuditEntry, type Catalog, type KeyGrant, type KeyScope, type NewTenant, type Tenant, type TenantSettings } from '../../ports/catalog.js';
import { bumpEpoch, immediate, openDatabase, readEpoch, type SqliteDatabase } from './database.js';
import { SqliteDeadLetters } from './dead-letters.js';
import { SqliteSchemas } from './schemas.js';

/**
 * API keys look like `sluice_w_<id>_<secret>`: the scope letter (w = write, r = read,
 * a = admin, s = schema), a
 * public id used to find the key, and a 256-bit secret. Only SHA-256(secret) is stored; a
 * fast hash is right for random secrets of this length (there is nothing to brute-force).
 */
const KEY_PATTERN = /^sluice_([wras])_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const SCOPE_LETTER: Record<KeyScope, string> = { write: 'w', read: 'r', admin: 'a', schema: 's' };
const DEFAULT_SETTINGS: TenantSettings = { unknownTypes: 'accept', quota: {}, paused: null };
const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Revocations reach a running server within this long. */
const KEY_CACHE_MS = 5_000;

interface CachedKey {
  tenant: string;
  scope: KeyScope;
  team: string | null;
  hash: Buffer;
  revoked: boolean;
  at: number;
}

/** Stored settings over the defaults: a setting added later reads as its default. */
function parseSettings(text: string): TenantSettings {
  return { ...DEFAULT_SETTINGS, ...(JSON.parse(text) as Partial<TenantSettings>) };
}

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

export class SqliteCatalog implements Catalog {
  readonly name = 'sqlite';
  private readonly db: SqliteDatabase;
  private readonly ownsDb: boolean;
  private readonly cache = new Map<string, CachedKey | null>();
  readonly deadLetters: SqliteDeadLetters;
  readonly schemas: SqliteSchemas;

  constructor(fileOrDb: string | SqliteDatabase) {
    this.ownsDb = typeof fileOrDb === 'string';
    this.db = typeof fileOrDb === 'string' ? openDatabase(fileOrDb) : fileOrDb;
    this.deadLetters = new SqliteDeadLetters(this.db);
    this.schemas = new SqliteSchemas(this.db);
  }

  async createTenant(name: string): Promise<NewTenant> {
    if (!TENANT_NAME.test(name)) {
      throw new SluiceError(
        'SLUICE_ERR_INVALID_BODY',
        `tenant name ${JSON.stringify(name)} is not valid: use 1-63 lowercase letters, digits, "-" or "_", starting with a letter or digit`,
        { field: 'name' },
      );
    }
    const now = Date.now();
    return immediate(this.db, () => {
      const exists = this.db.prepare('SELECT 1 FROM tenants WHERE name = ?').get(name);
      if (exists) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `tenant "${name}" already exists`, { field: 'name' });
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
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    this.db
      .prepare('INSERT INTO api_keys (id, tenant, scope, hash, created_at, team) VALUES (?, ?, ?, ?, ?, ?)')
      .run(id, tenant, scope, hashSecret(secret).toString('hex'), now, team);
    return `sluice_${SCOPE_LETTER[scope]}_${id}_${secret}`;
  }

  async createKey(tenant: string, scope: KeyScope, team?: string): Promise<string> {
    if (scope === 'schema' && (!team || !TEAM_NAME.test(team))) {
      throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'a schema key needs a team: 1-63 letters, digits, ".", "-" or "_"', { field: 'team' });
    }
    if (scope !== 'schema' && team !== undefined) {
      throw new SluiceError('SLUICE_ERR_INVALID_BODY', `only schema keys have a team, not ${scope} keys`, { field: 'team' });
    }
    if (!(await this.getTenant(tenant))) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no tenant "${tenant}"`, { field: 'tenant' });
    const now = Date.now();
    return immediate(this.db, () => {
      const key = this.insertKey(tenant, scope, now, team ?? null);
      this.insertAudit({ tenant, actor: 'cli', action: 'key.create', subject: key.slice(0, 26), detail: { scope, team: team ?? null } }, now);
      return key;
    });
  }

  async settings(tenant: string): Promise<TenantSettings> {
    const row = this.db.prepare('SELECT settings FROM tenants WHERE name = ?').get(tenant) as { settings: string } | undefined;
    if (!row) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no tenant "${tenant}"`, { field: 'tenant' });
    return parseSettings(row.settings);
  }

  async updateSettings(tenant: string, patch: Partial<TenantSettings>, actor: string): Promise<TenantSettings> {
    const now = Date.now();
    return immediate(this.db, () => {
      const row = this.db.prepare('SELECT settings FROM tenants WHERE name = ?').get(tenant) as { settings: string } | undefined;
      if (!row) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no tenant "${tenant}"`, { field: 'tenant' });
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
    const m = KEY_PATTERN.exec(presented);
    if (!m) return null;
    const [, letter, id, secret] = m as unknown as [string, string, string, string];
    const key = this.lookup(id);
    if (!key || key.revoked || SCOPE_LETTER[key.scope] !== letter) return null;
    if (!timingSafeEqual(hashSecret(secret), key.hash)) return null;
    return key.team === null ? { tenant: key.tenant, scope: key.scope, keyId: id } : { tenant: key.tenant, scope: key.scope, keyId: id, team: key.team };
  }

  private lookup(id: string): CachedKey | null {
    const now = Date.now();
    const hit = this.cache.get(id);
    if (hit && now - hit.at < KEY_CACHE_MS) return hit;
    const row = this.db.prepare('SELECT tenant, scope, hash, revoked_at, team FROM api_keys WHERE id = ?').get(id) as
      | { tenant: string; scope: KeyScope; hash: string; revoked_at: number | null; team: string | null }
      | undefined;
    // Unknown ids are not cached: a key created a moment ago by the CLI must work at once.
    if (!row) return null;
    if (this.cache.size > 10_000) this.cache.clear();
    const key = { tenant: row.tenant, scope: row.scope, team: row.team, hash: Buffer.from(row.hash, 'hex'), revoked: row.revoked_at !== null, at: now };
    this.cache.set(id, key);
    return key;
  }

  async revokeKey(keyId: string): Promise<boolean> {
    const changed = this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(Date.now(), keyId).changes;
    this.cache.delete(keyId);
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
