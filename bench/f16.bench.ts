// `npx vitest bench --run bench/f16.bench.ts`: see bench/f16-suite.ts (f16 matmul, conv2d, attention;
// the f32 conv at SD1.5's levels).
import { bench, describe } from 'vitest';
import { runSuite } from './f16-suite.js';

describe('f16', () => {
  bench('f16 / tensor-core suite (table above)', async () => {
    await runSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
