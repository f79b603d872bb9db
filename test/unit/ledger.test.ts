import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { immediate, openDatabase, type SqliteDatabase } from '../../src/backends/sqlite/database.js';
import { BlockedBloom, KeyLedger, keyHash } from '../../src/backends/sqlite/ledger.js';
import { tmpDir } from '../helpers/tmp.js';

const HORIZON = 1_000;

type Step =
  | { kind: 'claim'; keys: number[]; tenant: number }
  | { kind: 'fail'; keys: number[] }
  | { kind: 'maintain'; steps: number }
  | { kind: 'reopen' }
  | { kind: 'advance'; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('claim' as const), keys: fc.array(fc.integer({ min: 0, max: 400 }), { maxLength: 40 }), tenant: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fail' as const), keys: fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 10 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('maintain' as const), steps: fc.integer({ min: 1, max: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 1_500 }) }) },
);

/** A random-looking key per number, as UUIDs are. */
const keyOf = (n: number): string => `${(keyHash('k', String(n)) % 0xffffffff).toString(16)}-${n}`;

/** Claims `keys` for tenant "t" in one transaction, as an append does; answers which were new. */
function claimAll(db: SqliteDatabase, ledger: KeyLedger, keys: readonly string[], now: number): boolean[] {
  const fresh = immediate(db, () => {
    ledger.begin(now);
    return keys.map((k) => ledger.claim('t', k));
  });
  ledger.commit();
  return fresh;
}

describe('key ledger (log-structured)', () => {
  it('ledger.answers-exactly-as-a-set-of-the-keys-claimed-in-this-and-the-previous-generation-through-runs-merges-reopens-and-rollbacks', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 2, max: 4 }), fc.integer({ min: 1, max: 100 }), (steps, tailKeys, fanout, maxRunKeys) => {
        const file = path.join(tmpDir(), 'ledger.db');
        let db: SqliteDatabase = openDatabase(file, { fsync: 'off' });
        const options = { horizonMs: HORIZON, tailKeys, fanout, sliceKeys: 5, maxRunKeys };
        let ledger = new KeyLedger(db, options);
        let now = 10 * HORIZON;
        // The model: the generation each key was last claimed in.
        const claimedIn = new Map<string, number>();
        const gen = (): number => Math.floor(now / HORIZON);
        const known = (id: string): boolean => {
          const g = claimedIn.get(id);
          return g !== undefined && g >= gen() - 1;
        };
        try {
          for (const s of steps) {
            if (s.kind === 'claim' || s.kind === 'fail') {
              const tenant = s.kind === 'claim' ? `t${s.tenant}` : 't0';
              const expected: boolean[] = [];
              const seenNow = new Set<string>();
              for (const n of s.keys) {
                const id = `${tenant}/${keyOf(n)}`;
                expected.push(!known(id) && !seenNow.has(id));
                seenNow.add(id);
              }
              let got: boolean[] = [];
              try {
                immediate(db, () => {
                  ledger.begin(now);
                  got = s.keys.map((n) => ledger.claim(tenant, keyOf(n)));
                  if (s.kind === 'fail') throw new Error('the append failed');
                });
                ledger.commit();
              } catch (e) {
                ledger.rollback();
                if (s.kind !== 'fail') throw e;
              }
              expect(got).toEqual(expected);
              if (s.kind === 'claim') s.keys.forEach((n, i) => expected[i] && claimedIn.set(`${tenant}/${keyOf(n)}`, gen()));
              else {
                // The same batch resent after the failed append: its new keys are still new.
                const retry = immediate(db, () => {
                  ledger.begin(now);
                  return s.keys.map((n) => ledger.claim(tenant, keyOf(n)));
                });
                ledger.commit();
                expect(retry).toEqual(expected);
                s.keys.forEach((n, i) => expected[i] && claimedIn.set(`${tenant}/${keyOf(n)}`, gen()));
              }
              // From memory (this ledger), and from the tables (a connection that never appended).
              const reader = new KeyLedger(db, options);
              for (const n of s.keys.slice(0, 3)) {
                expect(ledger.seen(tenant, keyOf(n), now)).toBe(known(`${tenant}/${keyOf(n)}`));
                expect(reader.seen(tenant, keyOf(n), now)).toBe(known(`${tenant}/${keyOf(n)}`));
              }
            } else if (s.kind === 'maintain') {
              for (let i = 0; i < s.steps && ledger.maintain(); i++);
            } else if (s.kind === 'reopen') {
              db.close();
              db = openDatabase(file, { fsync: 'off' });
              ledger = new KeyLedger(db, options);
            } else {
              now += s.ms;
            }
          }
        } finally {
          db.close();
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 150) },
    );
  });

  it('ledger.rewrites-full-tails-as-runs-and-merges-runs-of-a-level-keeping-every-key', () => {
    const db = openDatabase(path.join(tmpDir(), 'ledger.db'), { fsync: 'off' });
    const ledger = new KeyLedger(db, { horizonMs: 86_400_000, tailKeys: 100, fanout: 4, sliceKeys: 50 });
    const now = Date.now();
    const keys = Array.from({ length: 2_000 }, (_, i) => keyOf(i));
    for (let i = 0; i < keys.length; i += 50) {
      expect(claimAll(db, ledger, keys.slice(i, i + 50), now).every(Boolean)).toBe(true);
      while (ledger.maintain());
    }
    const stats = ledger.stats();
    // 2,000 keys: 20 tails of 100 → level-0 runs merged 4 by 4 into level 1, and those into level 2.
    expect(stats.runKeys + stats.tailKeys).toBe(2_000);
    expect(stats.runs).toBeLessThan(8);
    expect(stats.filterBytes).toBeGreaterThan(0);
    const again = immediate(db, () => {
      ledger.begin(now);
      return keys.map((k) => ledger.claim('t', k));
    });
    ledger.commit();
    expect(again.some(Boolean)).toBe(false);
    // Reopened with the stored filters, then without them (rebuilt from the runs' hashes).
    for (const drop of [false, true]) {
      if (drop) db.exec('UPDATE ledger_runs SET filter = NULL');
      const reopened = new KeyLedger(db, { horizonMs: 86_400_000, tailKeys: 100 });
      const answers = immediate(db, () => {
        reopened.begin(now);
        return [...keys, `new-key-${drop}`].map((k) => reopened.claim('t', k));
      });
      reopened.commit();
      expect(answers.filter(Boolean).length).toBe(1);
      expect(answers.at(-1)).toBe(true);
    }
    db.close();
  });

  it('ledger.merges-no-run-past-maxRunKeys-and-writes-full-tails-while-a-merge-is-under-way', () => {
    const db = openDatabase(path.join(tmpDir(), 'ledger.db'), { fsync: 'off' });
    // Tails of 100; four level-0 runs make a level-1 run of 400; four of those would make 1,600, past the bound.
    const ledger = new KeyLedger(db, { horizonMs: 86_400_000, tailKeys: 100, fanout: 4, sliceKeys: 10, maxRunKeys: 400 });
    const now = Date.now();
    const keys = Array.from({ length: 3_000 }, (_, i) => keyOf(i));
    let tailsDuringMerges = 0;
    for (let i = 0; i < keys.length; i += 50) {
      expect(claimAll(db, ledger, keys.slice(i, i + 50), now).every(Boolean)).toBe(true);
      // One step of background work per append, as the log gives it: a merge of 400 keys takes
      // 40 steps, and the tails filled meanwhile are written as runs between its slices.
      const before = ledger.stats();
      ledger.maintain();
      const after = ledger.stats();
      if (after.tails < before.tails && (ledger as unknown as { merge: unknown }).merge !== null) tailsDuringMerges++;
    }
    while (ledger.maintain());
    const runs = db.prepare('SELECT level, keys FROM ledger_runs').all() as { level: number; keys: number }[];
    expect(Math.max(...runs.map((r) => r.keys))).toBeLessThanOrEqual(400);
    expect(runs.filter((r) => r.level === 1).length).toBeGreaterThanOrEqual(4);
    expect(tailsDuringMerges, 'no tail was written while a merge was under way').toBeGreaterThan(0);
    expect(ledger.stats().runKeys + ledger.stats().tailKeys).toBe(3_000);
    const again = immediate(db, () => {
      ledger.begin(now);
      return [...keys, 'a-new-key'].map((k) => ledger.claim('t', k));
    });
    ledger.commit();
    expect(again.filter(Boolean).length).toBe(1);
    db.close();
  });

  it('ledger.still-knows-the-keys-of-the-earlier-b-tree-layout-until-their-generation-expires', () => {
    const db = openDatabase(path.join(tmpDir(), 'ledger.db'), { fsync: 'off' });
    const horizon = 86_400_000;
    const now = Date.now();
    const g = Math.floor(now / horizon);
    // What a log written before the log-structured ledger holds: one B-tree per generation.
    db.exec(`CREATE TABLE ledger_${g} (tenant TEXT NOT NULL, idem TEXT NOT NULL, PRIMARY KEY (tenant, idem)) WITHOUT ROWID`);
    db.prepare(`INSERT INTO ledger_${g} VALUES ('t', 'old-key')`).run();
    const ledger = new KeyLedger(db, { horizonMs: horizon });
    const claim = (at: number, key: string): boolean => {
      const fresh = immediate(db, () => {
        ledger.begin(at);
        return ledger.claim('t', key);
      });
      ledger.commit();
      return fresh;
    };
    expect(ledger.seen('t', 'old-key', now)).toBe(true);
    expect(claim(now, 'old-key')).toBe(false);
    expect(claim(now + horizon, 'old-key')).toBe(false);
    expect(claim(now + 2 * horizon, 'old-key')).toBe(true);
    expect(db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'ledger_${g}'`).pluck().get()).toBe(0);
    db.close();
  });

  it('bloom.has-no-false-negatives-and-about-0.3-percent-false-positives-at-14-bits-a-key', () => {
    const bloom = new BlockedBloom(100_000);
    for (let i = 0; i < 100_000; i++) bloom.add(keyHash('t', `in-${i}`));
    for (let i = 0; i < 100_000; i++) expect(bloom.has(keyHash('t', `in-${i}`))).toBe(true);
    let fp = 0;
    for (let i = 0; i < 100_000; i++) if (bloom.has(keyHash('t', `out-${i}`))) fp++;
    console.log('bloom false positives', { of: 100_000, fp, rate: fp / 100_000 });
    expect(fp / 100_000).toBeLessThan(0.01);
  });

  it('keyHash.is-a-non-negative-safe-integer-that-depends-on-tenant-and-key', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (t, k) => {
        const h = keyHash(t, k);
        expect(Number.isSafeInteger(h) && h >= 0 && h < 2 ** 53).toBe(true);
        expect(keyHash(t, k)).toBe(h);
      }),
    );
    expect(keyHash('a', 'bc')).not.toBe(keyHash('ab', 'c'));
  });
});
