import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { ReadPool } from '../../src/backends/duckdb/read-pool.js';

/** A job that runs until told to finish. */
function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('the read pool', () => {
  it('readpool.a-tenant-holds-at-most-its-share-and-a-freed-reader-goes-to-the-tenant-waiting', async () => {
    const clock = new ManualClock();
    const pool = new ReadPool(['r1', 'r2', 'r3'], { perTenant: 2, maxWaitMs: 10_000, setTimeout: (fn, ms) => clock.setTimeout(fn, ms), clearTimeout: (h) => clock.clearTimeout(h as never) });
    const started: string[] = [];
    const gates = new Map<string, ReturnType<typeof gate>>();
    const job = (tenant: string, name: string) =>
      pool.run(tenant, async (reader) => {
        started.push(`${name}@${reader}`);
        const g = gate();
        gates.set(name, g);
        await g.p;
        return name;
      });
    const a = [1, 2, 3, 4, 5].map((i) => job('a', `a${i}`));
    await tick();
    expect(started.map((s) => s.split('@')[0])).toEqual(['a1', 'a2']); // its share, though a reader is free
    expect([pool.busy, pool.waiting]).toEqual([2, 3]);
    const b = job('b', 'b1');
    await tick();
    expect(started.map((s) => s.split('@')[0])).toEqual(['a1', 'a2', 'b1']); // b does not wait behind a
    const c = [job('c', 'c1'), job('c', 'c2')];
    await tick();
    gates.get('a1')!.open();
    await tick();
    await tick();
    // The freed reader goes to c (waiting, under its share), not to a's third query.
    expect(started.map((s) => s.split('@')[0])).toEqual(['a1', 'a2', 'b1', 'c1']);
    for (const name of ['a2', 'b1', 'c1']) gates.get(name)!.open();
    await tick();
    await tick();
    // c is still active (c2 runs): a gets one reader, not its two, though readers are free.
    expect(started.map((s) => s.split('@')[0]).slice(4).sort()).toEqual(['a3', 'c2']);
    for (let i = 0; i < 10; i++) {
      for (const g of gates.values()) g.open();
      await tick();
    }
    expect(await Promise.all([...a, b, ...c])).toEqual(['a1', 'a2', 'a3', 'a4', 'a5', 'b1', 'c1', 'c2']);
    expect([pool.busy, pool.waiting]).toEqual([0, 0]);
  });

  it('readpool.a-second-reader-waits-while-another-tenant-is-active-and-is-granted-once-it-has-been-idle', async () => {
    const clock = new ManualClock();
    const pool = new ReadPool(['r1', 'r2', 'r3'], { perTenant: 2, maxWaitMs: 60_000, activeWindowMs: 2_000, now: () => clock.now(), setTimeout: (fn, ms) => clock.setTimeout(fn, ms), clearTimeout: (h) => clock.clearTimeout(h as never) });
    await pool.run('b', async () => clock.advance(5)); // b's small query: b is active for 2 s after it
    const gates = [gate(), gate(), gate()];
    const started: number[] = [];
    const a = gates.map((g, i) => pool.run('a', async () => {
      started.push(i);
      await g.p;
    }));
    await tick();
    expect(started).toEqual([0]); // one reader while b is active, though two are free
    expect([pool.busy, pool.waiting]).toEqual([1, 2]);
    await clock.advance(2_001);
    gates[0]!.open();
    await tick();
    await tick();
    expect(started).toEqual([0, 1, 2]); // b idle past the window: a holds its two
    for (const g of gates) g.open();
    await Promise.all(a);
    expect([pool.busy, pool.waiting]).toEqual([0, 0]);
  });

  it('readpool.waiting-past-maxWaitMs-is-refused-as-retryable-and-never-runs', async () => {
    const clock = new ManualClock();
    const pool = new ReadPool(['r1'], { perTenant: 1, maxWaitMs: 1_000, setTimeout: (fn, ms) => clock.setTimeout(fn, ms), clearTimeout: (h) => clock.clearTimeout(h as never) });
    const g = gate();
    const first = pool.run('a', () => g.p);
    let ran = false;
    const second = pool.run('b', async () => {
      ran = true;
    });
    const outcome = second.then(() => null, (e: unknown) => e);
    await tick();
    await clock.advance(1_000);
    await expect(outcome).resolves.toMatchObject({ code: 'SLUICE_RETRY_AFTER', message: expect.stringMatching(/waited 1000 ms for a free reader/) });
    g.open();
    await first;
    expect(ran).toBe(false);
    expect(pool.waiting).toBe(0);
  });
});
