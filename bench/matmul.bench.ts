// `npm run bench` (vitest bench --run): the matmul suite in bench/matmul-suite.ts runs once and prints
// its own table (GFLOP/s, % of FP32 peak, ratio to gpu.js) and writes bench/results/<adapter>.json.
import { bench, describe } from 'vitest';
import { runSuite } from './matmul-suite.js';

describe('matmul', () => {
  bench('matmul suite (table above)', async () => {
    await runSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
