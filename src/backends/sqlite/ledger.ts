import type { Statement } from 'better-sqlite3';
import { immediate, type SqliteDatabase } from './database.js';
import { BlockedBloom, keyHash, SPACE } from './key-hash.js';

export { BlockedBloom, keyHash };

/**
 * The embedded log's key ledger, log-structured so that its cost does not depend on the order
 * keys arrive in (UUIDs cost what sequential keys cost).
 *
 * Keys live in generations of one dedupe horizon each; a key is checked against the current
 * and the previous generation (so it is remembered for one to two horizons), and a generation
 * expires by dropping its tables. Within a generation:
 *
 * - **Tail** (`ledger_<g>_t<n>`): a rowid table the append transaction appends (hash, tenant,
 *   key) rows to, in arrival order. Appending to the end of a rowid B-tree dirties the same
 *   last leaf for every key, whatever the key, which is why this is cheap. An exact in-memory
 *   set of the tail's keys answers lookups; it is rebuilt from the table when the log opens,
 *   so nothing depends on memory for durability.
 * - **Runs** (`ledger_<g>_r<n>`, registered in `ledger_runs`): once a tail holds `tailKeys`
 *   keys, a new tail starts and the full one is rewritten, sorted by hash, as a run (a
 *   WITHOUT ROWID table written in key order), in one transaction that also drops the tail.
 *   `fanout` runs of one level are merged into one of the next level in background steps, one
 *   hash range per transaction; the inputs stay registered until the merged run replaces them
 *   in one transaction, so a crash at any point leaves either the inputs or the output.
 *   (Size-tiered compaction, as in Cassandra's STCS or LevelDB's memtable flushes: O'Neil et
 *   al., "The Log-Structured Merge-Tree", 1996.)
 * - Each run has a blocked Bloom filter in memory (Putze, Sanders, Singler, "Cache-, Hash- and
 *   Space-Efficient Bloom Filters", 2007; 14 bits per key, 8 bits set in one 512-bit block:
 *   about 0.3% false positives), stored with the run in `ledger_runs` (1.75 bytes a key) and
 *   read back when the log opens (rebuilt from the run's hashes if it is missing). A new key
 *   touches no B-tree except when a filter answers "maybe"; a duplicate costs one point read
 *   in the run that holds it.
 *
 * A key is claimed (checked and recorded) inside the append transaction, so that the check and
 * the append are one durable step. If the transaction rolls back, `rollback()` forgets the keys
 * the in-memory sets gained in it.
 *
 * Another connection that appends to the same file (a second process) is noticed at the
 * start of each claim transaction, by the tail's last rowid and `ledger_version` in `meta`, and
 * the in-memory state catches up before any key is checked.
 */
export interface KeyLedgerOptions {
  /** Length of one generation (the dedupe horizon), ms. */
  horizonMs: number;
  /**
   * Keys per tail before it is rewritten as a run (32,768 by default: about 5 MiB of set, and a
   * rewrite of 40–60 ms, where 131,072 took 170–320 ms for the same cost a key; measured with
   * fsync always, 1.2M UUID keys).
   */
  tailKeys?: number;
  /** Runs of one level merged at once (4 by default). */
  fanout?: number;
  /** Keys per transaction of a merge step (16,384 by default: 15–30 ms of write lock, measured as above). */
  sliceKeys?: number;
  /**
   * The most keys a merge may write into one run (by default tailKeys × fanout⁴, four merges up
   * from a tail: 8,388,608 with the defaults). Runs are merged while the result stays within
   * it; larger runs stay as they are, each answering through its filter. Without a bound, the
   * merge of four 8M-key runs rewrote 33M keys in one go: in an hour's soak at 21,000 ev/s with
   * UUID keys the log's append p50 went from 9 ms to 80–300 ms from minute 27 to the end, and
   * the tails waiting behind it grew the HTTP thread's heap from 71 MiB to 516 MiB at its
   * highest (`npm run soak -- --rate 21000`). Bounded, each key is
   * rewritten at most four times, and a lookup checks one filter more per 8M keys in a
   * generation (one cache line each; about 0.3% of new keys then read a run).
   */
  maxRunKeys?: number;
}


interface Tail {
  name: string;
  seq: number;
  keys: Set<string>;
  /** The last rowid this process knows of. */
  rows: number;
  insert: Statement;
  last: Statement;
  since: Statement;
}

interface Run {
  name: string;
  seq: number;
  level: number;
  keys: number;
  bloom: BlockedBloom;
  get: Statement;
}

interface Generation {
  g: number;
  tails: Tail[];
  runs: Run[];
  /** A `ledger_<g>` table of the earlier layout (PRIMARY KEY (tenant, idem)), read-only. */
  legacy: Statement | null;
}

interface Merge {
  g: number;
  inputs: Run[];
  name: string;
  seq: number;
  level: number;
  keys: number;
  slice: number;
  slices: number;
  bloom: BlockedBloom;
}

const NAME = /^ledger_(\d+)(?:_([tr])(\d+))?$/;

export class KeyLedger {
  private readonly db: SqliteDatabase;
  private readonly horizonMs: number;
  private readonly tailKeys: number;
  private readonly fanout: number;
  private readonly sliceKeys: number;
  private readonly maxRunKeys: number;
  private loaded = false;
  private version = -1;
  private gens = new Map<number, Generation>();
  private current: Generation | null = null;
  private previous: Generation | null = null;
  /** Keys claimed in the open transaction: forgotten again if it rolls back. */
  private claimed: { tail: Tail; id: string }[] = [];
  private merge: Merge | null = null;
  private readonly readVersion: Statement;
  private readonly bumpVersion: Statement;
  private readonly nextSeq: Statement;

  constructor(db: SqliteDatabase, options: KeyLedgerOptions) {
    this.db = db;
    this.horizonMs = Math.max(1, options.horizonMs);
    this.tailKeys = Math.max(1, options.tailKeys ?? 32_768);
    this.fanout = Math.max(2, options.fanout ?? 4);
    this.sliceKeys = Math.max(1, options.sliceKeys ?? 16_384);
    this.maxRunKeys = Math.max(1, options.maxRunKeys ?? this.tailKeys * this.fanout ** 4);
    db.exec(
      `CREATE TABLE IF NOT EXISTS ledger_runs (name TEXT PRIMARY KEY, gen INTEGER NOT NULL, level INTEGER NOT NULL, keys INTEGER NOT NULL, filter BLOB);
       INSERT OR IGNORE INTO meta (k, v) VALUES ('ledger_version', '0');
       INSERT OR IGNORE INTO meta (k, v) VALUES ('ledger_seq', '0');`,
    );
    this.readVersion = db.prepare(`SELECT CAST(v AS INTEGER) FROM meta WHERE k = 'ledger_version'`).pluck();
    this.bumpVersion = db.prepare(`UPDATE meta SET v = CAST(v AS INTEGER) + 1 WHERE k = 'ledger_version' RETURNING CAST(v AS INTEGER)`).pluck();
    this.nextSeq = db.prepare(`UPDATE meta SET v = CAST(v AS INTEGER) + 1 WHERE k = 'ledger_seq' RETURNING CAST(v AS INTEGER)`).pluck();
  }

  private generationOf(now: number): number {
    return Math.floor(now / this.horizonMs);
  }

  // ---- inside the append transaction ---------------------------------------------------

  /**
   * Call first inside the append transaction: expires old generations, makes the current
   * one exist, and catches up with what other connections wrote.
   */
  begin(now: number): void {
    this.claimed = [];
    const g = this.generationOf(now);
    if (!this.loaded || this.readVersion.get() !== this.version) this.load(g);
    if (this.current?.g !== g) this.rotate(g);
    for (const gen of [this.current, this.previous]) {
      if (!gen) continue;
      const tail = gen.tails[gen.tails.length - 1];
      if (tail && (tail.last.get() as number | null ?? 0) !== tail.rows) this.catchUp(tail);
    }
    const cur = this.current!;
    if (cur.tails.length === 0 || cur.tails[cur.tails.length - 1]!.keys.size >= this.tailKeys) this.newTail(cur);
  }

  /** Checks a key and records it if new; true if it was new. Inside the append transaction, after begin(). */
  claim(tenant: string, key: string): boolean {
    const h = keyHash(tenant, key);
    const id = tenant + '\u0000' + key;
    if (this.has(this.current!, h, id, tenant, key) || (this.previous && this.has(this.previous, h, id, tenant, key))) return false;
    const cur = this.current!;
    let tail = cur.tails[cur.tails.length - 1]!;
    if (tail.keys.size >= this.tailKeys) tail = this.newTail(cur);
    tail.rows = Number(tail.insert.run(h, tenant, key).lastInsertRowid);
    tail.keys.add(id);
    this.claimed.push({ tail, id });
    return true;
  }

  /** The append transaction committed. */
  commit(): void {
    this.claimed = [];
  }

  /** The append transaction rolled back: forget what it claimed, and re-read the state next time. */
  rollback(): void {
    for (const { tail, id } of this.claimed) tail.keys.delete(id);
    this.claimed = [];
    this.loaded = false;
  }

  private has(gen: Generation, h: number, id: string, tenant: string, key: string): boolean {
    for (let i = gen.tails.length - 1; i >= 0; i--) if (gen.tails[i]!.keys.has(id)) return true;
    for (let i = gen.runs.length - 1; i >= 0; i--) {
      const run = gen.runs[i]!;
      if (run.bloom.has(h) && run.get.get(h, tenant, key) !== undefined) return true;
    }
    return gen.legacy !== null && gen.legacy.get(tenant, key) !== undefined;
  }

  // ---- durable lookups, without the in-memory state --------------------------------------

  /** Whether an append now would answer `duplicate` for this key (from memory on the appending connection, else from the tables). */
  seen(tenant: string, key: string, now: number): boolean {
    const g = this.generationOf(now);
    const h = keyHash(tenant, key);
    if (this.loaded && this.current?.g === g && this.readVersion.get() === this.version) {
      // The appending connection: its state is exact, and spares a scan of the tail.
      const tail = this.current.tails[this.current.tails.length - 1];
      if (!tail || ((tail.last.get() as number | null) ?? 0) === tail.rows) {
        const id = tenant + '\u0000' + key;
        return this.has(this.current, h, id, tenant, key) || (this.previous !== null && this.has(this.previous, h, id, tenant, key));
      }
    }
    for (const { name } of this.tables()) {
      const m = NAME.exec(name)!;
      const tg = Number(m[1]);
      if (tg !== g && tg !== g - 1) continue;
      const sql = m[2] === undefined ? `SELECT 1 FROM ${name} WHERE tenant = ? AND idem = ?` : `SELECT 1 FROM ${name} WHERE h = ? AND tenant = ? AND idem = ?`;
      const args = m[2] === undefined ? [tenant, key] : [h, tenant, key];
      if (m[2] === 'r' && !this.registered(name)) continue;
      if (this.db.prepare(sql).get(...args) !== undefined) return true;
    }
    return false;
  }

  private registered(name: string): boolean {
    return this.db.prepare('SELECT 1 FROM ledger_runs WHERE name = ?').get(name) !== undefined;
  }

  private tables(): { name: string }[] {
    return (this.db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'ledger\\_%' ESCAPE '\\'`).all() as { name: string }[]).filter(
      (t) => NAME.test(t.name),
    );
  }

  // ---- state: load, rotate, tails ------------------------------------------------------

  /** Rebuilds the in-memory state from the tables (at open, after a rollback, or when another connection changed them). */
  private load(g: number): void {
    this.gens.clear();
    this.merge = null;
    const registered = new Map<string, { level: number; keys: number; filter: Buffer | null }>();
    for (const r of this.db.prepare('SELECT name, level, keys, filter FROM ledger_runs').all() as { name: string; level: number; keys: number; filter: Buffer | null }[]) {
      registered.set(r.name, r);
    }
    const tables = this.tables().map((t) => ({ name: t.name, m: NAME.exec(t.name)! }));
    for (const { name, m } of tables) {
      const tg = Number(m[1]);
      if (tg < g - 1) continue; // dropped by rotate()
      let gen = this.gens.get(tg);
      if (!gen) this.gens.set(tg, (gen = { g: tg, tails: [], runs: [], legacy: null }));
      if (m[2] === undefined) {
        gen.legacy = this.db.prepare(`SELECT 1 FROM ${name} WHERE tenant = ? AND idem = ?`).pluck();
      } else if (m[2] === 't') {
        const tail = this.openTail(name, Number(m[3]));
        for (const row of this.db.prepare(`SELECT tenant, idem FROM ${name}`).raw().iterate() as Iterable<[string, string]>) tail.keys.add(row[0] + '\u0000' + row[1]);
        tail.rows = (tail.last.get() as number | null) ?? 0;
        gen.tails.push(tail);
      } else {
        const reg = registered.get(name);
        if (!reg) {
          // An unfinished merge or run build (a crash, or another connection's work in
          // progress): its inputs are still registered. Left alone; dropped with its generation.
          continue;
        }
        gen.runs.push(this.openRun(name, Number(m[3]), reg.level, reg.keys, reg.filter));
      }
    }
    for (const gen of this.gens.values()) {
      gen.tails.sort((a, b) => a.seq - b.seq);
      gen.runs.sort((a, b) => a.seq - b.seq);
    }
    this.current = this.gens.get(g) ?? null;
    this.previous = this.gens.get(g - 1) ?? null;
    this.version = this.readVersion.get() as number;
    this.loaded = true;
  }

  private openTail(name: string, seq: number): Tail {
    return {
      name,
      seq,
      keys: new Set(),
      rows: 0,
      insert: this.db.prepare(`INSERT INTO ${name} (h, tenant, idem) VALUES (?, ?, ?)`),
      last: this.db.prepare(`SELECT max(rowid) FROM ${name}`).pluck(),
      since: this.db.prepare(`SELECT rowid, tenant, idem FROM ${name} WHERE rowid > ?`).raw(),
    };
  }

  /** A registered run, its filter read from `saved` (stored with the run) or rebuilt from the run's hashes. */
  private openRun(name: string, seq: number, level: number, keys: number, saved: Buffer | null): Run {
    let bloom: BlockedBloom;
    if (saved && BlockedBloom.fits(keys, saved)) bloom = new BlockedBloom(keys, saved);
    else {
      bloom = new BlockedBloom(keys);
      for (const h of this.db.prepare(`SELECT h FROM ${name}`).pluck().iterate() as Iterable<number>) bloom.add(h);
    }
    return { name, seq, level, keys, bloom, get: this.db.prepare(`SELECT 1 FROM ${name} WHERE h = ? AND tenant = ? AND idem = ?`).pluck() };
  }

  private catchUp(tail: Tail): void {
    for (const [rowid, tenant, idem] of tail.since.all(tail.rows) as [number, string, string][]) {
      tail.keys.add(tenant + '\u0000' + idem);
      tail.rows = Math.max(tail.rows, rowid);
    }
  }

  private rotate(g: number): void {
    for (const { name } of this.tables()) {
      if (Number(NAME.exec(name)![1]) < g - 1) this.db.exec(`DROP TABLE ${name}`);
    }
    this.db.prepare('DELETE FROM ledger_runs WHERE gen < ?').run(g - 1);
    for (const tg of [...this.gens.keys()]) if (tg < g - 1) this.gens.delete(tg);
    if (this.merge && this.merge.g < g - 1) this.merge = null;
    if (!this.gens.has(g)) this.gens.set(g, { g, tails: [], runs: [], legacy: null });
    this.current = this.gens.get(g)!;
    this.previous = this.gens.get(g - 1) ?? null;
    this.version = this.bumpVersion.get() as number;
  }

  private newTail(gen: Generation): Tail {
    const seq = this.nextSeq.get() as number;
    const name = `ledger_${gen.g}_t${seq}`;
    this.db.exec(`CREATE TABLE ${name} (h INTEGER NOT NULL, tenant TEXT NOT NULL, idem TEXT NOT NULL)`);
    const tail = this.openTail(name, seq);
    gen.tails.push(tail);
    this.version = this.bumpVersion.get() as number;
    return tail;
  }

  // ---- background work -----------------------------------------------------------------

  /** Whether maintain() has work to do: a full tail to rewrite as a run, or runs to merge. */
  get pending(): boolean {
    if (!this.loaded) return false;
    if (this.merge) return true;
    for (const gen of this.gens.values()) {
      if (this.fullTail(gen)) return true;
      if (this.mergeable(gen)) return true;
    }
    return false;
  }

  private fullTail(gen: Generation): Tail | undefined {
    // Every tail but the one appends go to is full (or of a generation no longer appended to).
    const active = gen === this.current ? gen.tails[gen.tails.length - 1] : undefined;
    return gen.tails.find((t) => t !== active);
  }

  private mergeable(gen: Generation): Run[] | null {
    const byLevel = new Map<number, Run[]>();
    for (const r of gen.runs) byLevel.set(r.level, [...(byLevel.get(r.level) ?? []), r]);
    for (const level of [...byLevel.keys()].sort((a, b) => a - b)) {
      const runs = byLevel.get(level)!;
      if (runs.length < this.fanout) continue;
      const inputs = runs.slice(0, this.fanout);
      // A merge whose run would pass maxRunKeys is not made (nor any at higher levels).
      if (inputs.reduce((n, r) => n + r.keys, 0) > this.maxRunKeys) return null;
      return inputs;
    }
    return null;
  }

  /**
   * One step of background work, in its own transaction: rewrites one full tail as a run, or
   * merges one hash range of `fanout` runs (and installs the merged run after the last range).
   * Returns whether more work is left. Must run on the connection that appends, between appends.
   */
  maintain(): boolean {
    try {
      return this.maintainStep();
    } catch (e) {
      // The step's transaction rolled back: the in-memory state may be ahead of the tables.
      this.loaded = false;
      throw e;
    }
  }

  private maintainStep(): boolean {
    if (!this.loaded) return false;
    if (this.readVersion.get() !== this.version) {
      this.loaded = false;
      return false;
    }
    // Full tails first, even while a merge is under way: a merge of many slices must not leave
    // tails (and their in-memory sets) piling up behind it. Runs written meanwhile are not its inputs.
    for (const gen of this.gens.values()) {
      const tail = this.fullTail(gen);
      if (tail) {
        this.tailToRun(gen, tail);
        return this.pending;
      }
    }
    if (this.merge) {
      this.mergeStep(this.merge);
      return this.pending;
    }
    for (const gen of this.gens.values()) {
      const inputs = this.mergeable(gen);
      if (!inputs) continue;
      const keys = inputs.reduce((s, r) => s + r.keys, 0);
      const seq = immediate(this.db, () => this.nextSeq.get() as number);
      const name = `ledger_${gen.g}_r${seq}`;
      immediate(this.db, () => {
        this.db.exec(`DROP TABLE IF EXISTS ${name}`);
        this.db.exec(`CREATE TABLE ${name} (h INTEGER NOT NULL, tenant TEXT NOT NULL, idem TEXT NOT NULL, PRIMARY KEY (h, tenant, idem)) WITHOUT ROWID`);
      });
      this.merge = { g: gen.g, inputs, name, seq, level: Math.max(...inputs.map((r) => r.level)) + 1, keys, slice: 0, slices: Math.max(1, Math.ceil(keys / this.sliceKeys)), bloom: new BlockedBloom(keys) };
      return true;
    }
    return false;
  }

  private tailToRun(gen: Generation, tail: Tail): void {
    immediate(this.db, () => {
      const seq = this.nextSeq.get() as number;
      const name = `ledger_${gen.g}_r${seq}`;
      this.db.exec(`CREATE TABLE ${name} (h INTEGER NOT NULL, tenant TEXT NOT NULL, idem TEXT NOT NULL, PRIMARY KEY (h, tenant, idem)) WITHOUT ROWID`);
      this.db.exec(`INSERT OR IGNORE INTO ${name} (h, tenant, idem) SELECT h, tenant, idem FROM ${tail.name} ORDER BY h, tenant, idem`);
      const keys = this.db.prepare(`SELECT count(*) FROM ${name}`).pluck().get() as number;
      const run = this.openRun(name, seq, 0, keys, null);
      this.db.prepare('INSERT INTO ledger_runs (name, gen, level, keys, filter) VALUES (?, ?, 0, ?, ?)').run(name, gen.g, keys, run.bloom.toBuffer());
      this.db.exec(`DROP TABLE ${tail.name}`);
      gen.runs.push(run);
      gen.tails.splice(gen.tails.indexOf(tail), 1);
      this.version = this.bumpVersion.get() as number;
    });
  }

  private mergeStep(m: Merge): void {
    const gen = this.gens.get(m.g);
    if (!gen) {
      this.merge = null;
      return;
    }
    const lo = Math.floor((m.slice * SPACE) / m.slices);
    const hi = m.slice + 1 === m.slices ? SPACE : Math.floor(((m.slice + 1) * SPACE) / m.slices);
    immediate(this.db, () => {
      const arms = m.inputs.map((r) => `SELECT h, tenant, idem FROM ${r.name} WHERE h >= ${lo} AND h < ${hi}`).join(' UNION ALL ');
      this.db.exec(`INSERT OR IGNORE INTO ${m.name} (h, tenant, idem) SELECT h, tenant, idem FROM (${arms}) ORDER BY h, tenant, idem`);
      for (const h of this.db.prepare(`SELECT h FROM ${m.name} WHERE h >= ? AND h < ?`).pluck().iterate(lo, hi) as Iterable<number>) m.bloom.add(h);
      m.slice++;
      if (m.slice < m.slices) return;
      // The last range: the merged run replaces its inputs in this same transaction.
      const del = this.db.prepare('DELETE FROM ledger_runs WHERE name = ?');
      for (const r of m.inputs) {
        del.run(r.name);
        this.db.exec(`DROP TABLE ${r.name}`);
      }
      this.db.prepare('INSERT INTO ledger_runs (name, gen, level, keys, filter) VALUES (?, ?, ?, ?, ?)').run(m.name, m.g, m.level, m.keys, m.bloom.toBuffer());
      gen.runs = gen.runs.filter((r) => !m.inputs.includes(r));
      gen.runs.push({ name: m.name, seq: m.seq, level: m.level, keys: m.keys, bloom: m.bloom, get: this.db.prepare(`SELECT 1 FROM ${m.name} WHERE h = ? AND tenant = ? AND idem = ?`).pluck() });
      gen.runs.sort((a, b) => a.seq - b.seq);
      this.merge = null;
      this.version = this.bumpVersion.get() as number;
    });
  }

  /** Sizes, for health and benchmarks. */
  stats(): { tails: number; tailKeys: number; runs: number; runKeys: number; filterBytes: number } {
    let tails = 0;
    let tailKeys = 0;
    let runs = 0;
    let runKeys = 0;
    let filterBytes = 0;
    for (const gen of this.gens.values()) {
      tails += gen.tails.length;
      for (const t of gen.tails) tailKeys += t.keys.size;
      runs += gen.runs.length;
      for (const r of gen.runs) {
        runKeys += r.keys;
        filterBytes += r.bloom.bytes;
      }
    }
    // A merge under way holds its output's filter, full size, from its first slice.
    filterBytes += this.merge?.bloom.bytes ?? 0;
    return { tails, tailKeys, runs, runKeys, filterBytes };
  }
}
