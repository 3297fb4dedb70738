// Resource hygiene (issue 13): training loops on tiny models keep the buffer pool's live count and bytes and the
// Node heap flat. CI runs short loops (LPO 30 iterations, LRM 60 steps); scripts/hygiene-long.ts runs 1,000 each.
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { formatReport, lpoLoop, lrmLoop, type LoopReport } from './hygiene-loops.js';

beforeAll(setupGpu);

/**
 * Flat: the live buffers and bytes end where they were after the warm-up and never rise above it; the heap after GC
 * grows by less than `heapBytes` from the first to the last quarter of the loop (a short loop cannot see a small
 * leak through the heap's noise; the 1,000-iteration script can).
 */
function expectFlat(r: LoopReport, heapBytes: number): void {
  console.log(formatReport(r));
  expect(r.last.buffers).toBe(r.warm.buffers);
  expect(r.last.bytes).toBe(r.warm.bytes);
  expect(r.maxBuffers).toBe(r.warm.buffers);
  expect(r.maxBytes).toBe(r.warm.bytes);
  expect(r.heapSamples).toBeGreaterThanOrEqual(4);
  expect(r.heapGrowth).toBeLessThan(heapBytes);
}

describe('resource hygiene', () => {
  it('LPO iterations keep the pool and the heap flat', async () => {
    expectFlat(await lpoLoop(30, 5, 3), 3 << 20);
  }, 600_000);

  it('LRM steps keep the pool and the heap flat', async () => {
    expectFlat(await lrmLoop(60, 5, 5), 3 << 20);
  }, 600_000);
});
