import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The longest files first, whatever vitest has cached (a clean clone has no timings): with two
 * workers, the suite ends when the longest file does instead of when it started last.
 */
const LONGEST = [
  'test/scale-out/faults.kill-9-workers.test.ts',
  'test/scale-out/e2e.two-ingest-three-workers.test.ts',
  'test/faults/overload.twice-sustainable-load.test.ts',
  'test/faults/store.unavailable-60-s.test.ts',
  'test/faults/crash.kill-9.test.ts',
  'test/faults/crash.kill-9-uuid-keys.test.ts',
];

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification): number => {
      const i = LONGEST.findIndex((p) => f.moduleId.endsWith(p));
      return i < 0 ? LONGEST.length : i;
    };
    return (await super.sort(files)).map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: the heavy end-to-end and crash tests measure nothing, but should not starve.
    maxWorkers: 2,
    reporters: ['default'],
    // expect.poll gives up after 1 s by default: the console's round trips (a click, a request,
    // a render) take longer than that on two shared cores with the rest of the suite running.
    expect: { poll: { timeout: 10_000 } },
    sequence: { sequencer: LongestFirst },
  },
});
