import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { SluiceError } from '../core/errors.js';
import { isReservedName, reservedNameMessage } from '../core/reserved.js';
import { TEAM_NAME, type KeyGrant, type KeyScope, type TenantSettings } from '../ports/catalog.js';

/**
 * The catalog's rules that do not depend on its engine: tenant names, API keys (their shape,
 * minting, hashing and verification) and the defaults of a tenant's settings.
 *
 * API keys look like `sluice_w_<id>_<secret>`: the scope letter (w = write, r = read,
 * a = admin, s = schema), a public id used to find the key, and a 256-bit secret. Only
 * SHA-256(secret) is stored; a fast hash is right for random secrets of this length (there
 * is nothing to brute-force).
 */
const KEY_PATTERN = /^sluice_([wras])_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const SCOPE_LETTER: Record<KeyScope, string> = { write: 'w', read: 'r', admin: 'a', schema: 's' };
const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const DEFAULT_SETTINGS: TenantSettings = { unknownTypes: 'accept', quota: {}, paused: null };
/**
 * Revocations reach a running server within this long. With the live tail's re-check every
 * second (http/tail.ts), a revoked key's open streams end within 5 s, the documented delay.
 */
export const KEY_CACHE_MS = 4_000;
/**
 * While the catalog cannot be read, a key verified within this long keeps working: ingest
 * goes on through a short catalog outage. A revocation made during the outage waits for it
 * to end.
 */
const KEY_STALE_MS = 10 * 60_000;

/** Stored settings over the defaults: a setting added later reads as its default. */
export function parseSettings(stored: string | Partial<TenantSettings>): TenantSettings {
  return { ...DEFAULT_SETTINGS, ...(typeof stored === 'string' ? (JSON.parse(stored) as Partial<TenantSettings>) : stored) };
}

export function checkTenantName(name: string): void {
  if (isReservedName(name)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', reservedNameMessage('tenant', name), { field: 'name' });
  if (!TENANT_NAME.test(name)) {
    throw new SluiceError(
      'SLUICE_ERR_INVALID_BODY',
      `tenant name ${JSON.stringify(name)} is not valid: use 1-63 lowercase letters, digits, "-" or "_", starting with a letter or digit`,
      { field: 'name' },
    );
  }
}

export function tenantExists(name: string): SluiceError {
  return new SluiceError('SLUICE_ERR_INVALID_BODY', `tenant "${name}" already exists`, { field: 'name' });
}

export function noTenant(name: string): SluiceError {
  return new SluiceError('SLUICE_ERR_NOT_FOUND', `no tenant "${name}"`, { field: 'tenant' });
}

/** A schema key needs a team; no other key has one. */
export function checkKeyTeam(scope: KeyScope, team: string | undefined): void {
  if (scope === 'schema' && (!team || !TEAM_NAME.test(team))) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'a schema key needs a team: 1-63 letters, digits, ".", "-" or "_"', { field: 'team' });
  }
  if (scope !== 'schema' && team !== undefined) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', `only schema keys have a team, not ${scope} keys`, { field: 'team' });
  }
}

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** A new key: the id and hash to store, and the key itself, which is shown once and never stored. */
export function mintKey(scope: KeyScope): { id: string; hash: string; key: string } {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, hash: hashSecret(secret).toString('hex'), key: `sluice_${SCOPE_LETTER[scope]}_${id}_${secret}` };
}

/** The id of a key (`sluice_w_<id>_…`); a bare id is returned as it is. */
export function keyIdOf(keyOrId: string): string {
  return /^sluice_[wras]_([0-9a-f]{16})_/.exec(keyOrId)?.[1] ?? keyOrId;
}

/**
 * A key's last use is written at most this often (a write per key per minute, not per
 * request): KeyInfo.lastUsedAt is exact to this.
 */
export const KEY_TOUCH_MS = 60_000;

/** A stored key as the catalog reads it by id. */
export interface StoredKey {
  tenant: string;
  scope: KeyScope;
  team: string | null;
  /** Hex SHA-256 of the secret. */
  hash: string;
  revoked: boolean;
  /** Epoch ms; null: never used (or the catalog does not track it). */
  lastUsedAt?: number | null;
}

interface CachedKey {
  tenant: string;
  scope: KeyScope;
  team: string | null;
  hash: Buffer;
  revoked: boolean;
  at: number;
  lastUsedAt: number | null;
}

/**
 * Verifies presented keys against a catalog's stored keys, caching each key for
 * KEY_CACHE_MS; the hash is compared in constant time. Unknown ids are not cached: a key
 * created a moment ago by the CLI must work at once.
 */
export class KeyVerifier {
  private readonly cache = new Map<string, CachedKey>();

  /** `touch` records a key's use (see KEY_TOUCH_MS); its failure never fails a request. */
  constructor(
    private readonly read: (id: string) => Promise<StoredKey | null>,
    private readonly touch?: (id: string, at: number) => Promise<void>,
  ) {}

  async verify(presented: string): Promise<KeyGrant | null> {
    const m = KEY_PATTERN.exec(presented);
    if (!m) return null;
    const [, letter, id, secret] = m as unknown as [string, string, string, string];
    const key = await this.lookup(id);
    if (!key || key.revoked || SCOPE_LETTER[key.scope] !== letter) return null;
    if (!timingSafeEqual(hashSecret(secret), key.hash)) return null;
    const now = Date.now();
    if (this.touch && (key.lastUsedAt === null || now - key.lastUsedAt >= KEY_TOUCH_MS)) {
      key.lastUsedAt = now;
      this.touch(id, now).catch(() => undefined);
    }
    return key.team === null ? { tenant: key.tenant, scope: key.scope, keyId: id } : { tenant: key.tenant, scope: key.scope, keyId: id, team: key.team };
  }

  /** Forgets a key at once (this process revoked it). */
  forget(id: string): void {
    this.cache.delete(id);
  }

  private async lookup(id: string): Promise<CachedKey | null> {
    const now = Date.now();
    const hit = this.cache.get(id);
    if (hit && now - hit.at < KEY_CACHE_MS) return hit;
    let row: StoredKey | null;
    try {
      row = await this.read(id);
    } catch (e: unknown) {
      if (hit && now - hit.at < KEY_STALE_MS) return hit;
      throw e;
    }
    if (!row) {
      this.cache.delete(id);
      return null;
    }
    if (this.cache.size > 10_000) this.cache.clear();
    const lastUsedAt = Math.max(row.lastUsedAt ?? 0, hit?.lastUsedAt ?? 0) || null;
    const key = { tenant: row.tenant, scope: row.scope, team: row.team, hash: Buffer.from(row.hash, 'hex'), revoked: row.revoked, at: now, lastUsedAt };
    this.cache.set(id, key);
    return key;
  }
}
