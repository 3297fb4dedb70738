// The Dawn poll throttle (src/gpu/poll.ts): native callbacks re-armed through setImmediate poll back to back for
// the first POLL_SPIN_MS of a wait and then on a 1 ms timer; JavaScript callbacks are never delayed. A bound
// function stands in for Dawn's native callback (its source text is "[native code]" too).
import { afterAll, describe, expect, it } from 'vitest';
import { POLL_SPIN_MS, dawnPollingThrottled, throttleDawnPolling } from '../src/gpu/poll.js';

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
