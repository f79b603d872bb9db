import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: the heavy end-to-end and crash tests measure nothing, but should not starve.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
