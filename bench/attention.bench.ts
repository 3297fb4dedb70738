// `npx vitest bench --run bench/attention.bench.ts`: see bench/attention-suite.ts for the method.
import { bench, describe } from 'vitest';
import { runSuite } from './attention-suite.js';

describe('attention', () => {
  bench('attention 4096×4096 / 4096×77, d40 h8 (table above)', async () => {
    await runSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
