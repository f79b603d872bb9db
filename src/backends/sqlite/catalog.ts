import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { SluiceError } from '../../core/errors.js';
import type { DeadLetter, MinuteCount } from '../../core/types.js';
import type { Catalog, DeadLetterRow, KeyGrant, KeyScope, NewTenant, Tenant } from '../../ports/catalog.js';
import { immediate, openDatabase, type SqliteDatabase } from './database.js';

/**
 * API keys look like `sluice_w_<id>_<secret>`: the scope letter (w = write, r = read), a
 * public id used to find the key, and a 256-bit secret. Only SHA-256(secret) is stored; a
 * fast hash is right for random secrets of this length (there is nothing to brute-force).
 */
const KEY_PATTERN = /^sluice_([wra])_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const SCOPE_LETTER: Record<KeyScope, string> = { write: 'w', read: 'r', admin: 'a' };
const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Revocations reach a running server within this long. */
const KEY_CACHE_MS = 5_000;

interface CachedKey {
  tenant: string;
  scope: KeyScope;
  hash: Buffer;
  revoked: boolean;
  at: number;
}

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

export class SqliteCatalog implements Catalog {
  readonly name = 'sqlite';
  private readonly db: SqliteDatabase;
  private readonly ownsDb: boolean;
  private readonly cache = new Map<string, CachedKey | null>();

  constructor(fileOrDb: string | SqliteDatabase) {
    this.ownsDb = typeof fileOrDb === 'string';
    this.db = typeof fileOrDb === 'string' ? openDatabase(fileOrDb) : fileOrDb;
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

  private insertKey(tenant: string, scope: KeyScope, now: number): string {
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    this.db
      .prepare('INSERT INTO api_keys (id, tenant, scope, hash, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(id, tenant, scope, hashSecret(secret).toString('hex'), now);
    return `sluice_${SCOPE_LETTER[scope]}_${id}_${secret}`;
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
    return timingSafeEqual(hashSecret(secret), key.hash) ? { tenant: key.tenant, scope: key.scope, keyId: id } : null;
  }

  private lookup(id: string): CachedKey | null {
    const now = Date.now();
    const hit = this.cache.get(id);
    if (hit && now - hit.at < KEY_CACHE_MS) return hit;
    const row = this.db.prepare('SELECT tenant, scope, hash, revoked_at FROM api_keys WHERE id = ?').get(id) as
      | { tenant: string; scope: KeyScope; hash: string; revoked_at: number | null }
      | undefined;
    // Unknown ids are not cached: a key created a moment ago by the CLI must work at once.
    if (!row) return null;
    if (this.cache.size > 10_000) this.cache.clear();
    const key = { tenant: row.tenant, scope: row.scope, hash: Buffer.from(row.hash, 'hex'), revoked: row.revoked_at !== null, at: now };
    this.cache.set(id, key);
    return key;
  }

  async revokeKey(keyId: string): Promise<boolean> {
    const changed = this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(Date.now(), keyId).changes;
    this.cache.delete(keyId);
    return changed === 1;
  }

  async deadLetter(entries: readonly DeadLetter[]): Promise<void> {
    if (entries.length === 0) return;
    const now = Date.now();
    const upsert = this.db.prepare(
      `INSERT INTO dead_letters (tenant, idem, type, reason, message, attempts, p, o, first_seen, last_seen, origin, payload, received_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant, idem) DO UPDATE SET
         reason = excluded.reason, message = excluded.message, attempts = max(attempts, excluded.attempts),
         p = excluded.p, o = excluded.o, last_seen = excluded.last_seen`,
    );
    immediate(this.db, () => {
      for (const { record: r, reason, message } of entries) {
        const payload = JSON.stringify({
          type: r.type,
          key: r.key,
          ts: new Date(r.ts).toISOString(),
          idempotency_key: r.idempotencyKey,
          properties: JSON.parse(r.properties) as unknown,
          context: JSON.parse(r.context) as unknown,
        });
        upsert.run(r.tenant, r.idempotencyKey, r.type, reason, message, r.attempt, r.partition, r.offset, now, now, r.origin, payload, r.receivedAt);
      }
    });
  }

  async deadLetteredByMinute(from: number, to: number): Promise<MinuteCount[]> {
    return this.db
      .prepare(
        `SELECT tenant, received_at - (received_at % 60000) AS minute, count(*) AS n FROM dead_letters
         WHERE received_at >= ? AND received_at < ? GROUP BY 1, 2`,
      )
      .all(from, to) as MinuteCount[];
  }

  async deadLetterCounts(tenant: string): Promise<Record<string, number>> {
    const rows = this.db.prepare('SELECT reason, count(*) AS n FROM dead_letters WHERE tenant = ? GROUP BY reason').all(tenant) as { reason: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.reason, r.n]));
  }

  async listDeadLetters(tenant: string, limit: number): Promise<DeadLetterRow[]> {
    const rows = this.db
      .prepare('SELECT * FROM dead_letters WHERE tenant = ? ORDER BY last_seen DESC LIMIT ?')
      .all(tenant, Math.max(1, Math.min(limit, 1000))) as Record<string, unknown>[];
    return rows.map((r) => ({
      tenant: r.tenant as string,
      type: r.type as string,
      idempotencyKey: r.idem as string,
      reason: r.reason as string,
      message: r.message as string,
      attempts: r.attempts as number,
      partition: r.p as number,
      offset: r.o as number,
      firstSeen: r.first_seen as number,
      lastSeen: r.last_seen as number,
      origin: r.origin as string,
      payload: r.payload as string,
    }));
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
