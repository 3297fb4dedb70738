// The Dawn poll throttle (src/gpu/poll.ts): native callbacks re-armed through setImmediate poll back to back for
// the first POLL_SPIN_MS of a wait and then on a 1 ms timer; JavaScript callbacks are never delayed. A bound
// function stands in for Dawn's native callback (its source text is "[native code]" too).
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { BIND_GROUPS_PER_COLLECTION, POLL_SPIN_MS, dawnPollingThrottled, throttleDawnPolling } from '../src/gpu/poll.js';
import { setupGpu } from './helpers.js';
import { Tensor } from '../src/tensor/tensor.js';
import { add } from '../src/tensor/ops/elementwise.js';

/** Re-arms `cb` through setImmediate for `ms` milliseconds; resolves with the number of polls. */
function pollFor(ms: number, native: boolean): Promise<number> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let polls = 0;
    const body = () => {
      polls++;
      if (performance.now() - t0 >= ms) resolve(polls);
      else setImmediate(cb);
    };
    const cb = native ? body.bind(null) : () => body();
    setImmediate(cb);
  });
}

describe('Dawn poll throttle', () => {
  const initial = dawnPollingThrottled(); // restored below
  afterAll(() => throttleDawnPolling(initial));

  it('a bound function reads as native code, an arrow function does not', () => {
    expect(Function.prototype.toString.call((() => 0).bind(null))).toMatch(/\[native code\] \}$/);
    expect(Function.prototype.toString.call(() => 0)).not.toMatch(/\[native code\]/);
  });

  it('throttled: a native poll loop falls back to ~1 ms timers after the spin window; JS callbacks and the off switch poll back to back', async () => {
    throttleDawnPolling(true);
    const nativeThrottled = await pollFor(40, true);
    const jsThrottled = await pollFor(40, false);
    throttleDawnPolling(false);
    const nativeSpin = await pollFor(40, true);
    // 40 ms at ≥ 1 ms per timer poll after POLL_SPIN_MS of back-to-back polls: at most a few dozen.
    expect(POLL_SPIN_MS).toBeLessThan(1);
    expect(nativeThrottled).toBeLessThan(200);
    expect(nativeThrottled).toBeGreaterThan(5);
    // Back to back, setImmediate polls run thousands of times in 40 ms.
    expect(jsThrottled).toBeGreaterThan(10 * nativeThrottled);
    expect(nativeSpin).toBeGreaterThan(10 * nativeThrottled);
    console.log(`polls in 40 ms: native throttled ${nativeThrottled}, JS ${jsThrottled}, native unthrottled ${nativeSpin}`);
  });
});

describe('releasing Dawn objects while polls are throttled', () => {
  it('a full collection follows every BIND_GROUPS_PER_COLLECTION new bind groups, and lavapipe\'s mapped memory stays bounded', async () => {
    const g = await setupGpu();
    const was = dawnPollingThrottled();
    throttleDawnPolling(true);
    const maps = () => (existsSync('/proc/self/maps') ? readFileSync('/proc/self/maps', 'utf8').split('\n').length : 0);
    const c0 = g.counters.collections;
    const m0 = maps();
    let peak = m0;
    const kept: Tensor[] = [];
    try {
      // 24 rounds of 40 × 40 additions of fresh tensors, kept alive so that no round reuses another's buffers:
      // ~38k bind groups that no cache entry can serve.
      for (let round = 0; round < 24; round++) {
        const ts = Array.from({ length: 40 }, (_, i) => Tensor.fromArray([round, i], [2]));
        kept.push(...ts);
        for (const a of ts) for (const b of ts) add(a, b).dispose();
        await g.sync();
        peak = Math.max(peak, maps());
      }
    } finally {
      throttleDawnPolling(was);
      kept.forEach((t) => t.dispose());
    }
    expect(g.counters.collections - c0).toBeGreaterThanOrEqual(2);
    // Without the collections each bind group kept its descriptor set mapped: +38k maps here, and toy training
    // hit vm.max_map_count (65530) within 40 steps. With them the growth stays within two collection periods.
    if (m0 > 0) expect(peak - m0).toBeLessThan(2 * BIND_GROUPS_PER_COLLECTION);
    console.log(`collections ${g.counters.collections - c0}, maps ${m0} → peak ${peak}`);
  }, 300_000);
});
