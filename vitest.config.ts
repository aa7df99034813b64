import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests start real servers and child processes; keep the 2-core machines unsaturated.
    maxWorkers: 2,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
