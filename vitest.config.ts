import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{protocol,storage,ledger,worker,orchestrator,test,bench}/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
