// How the main thread waits for the GPU on a software adapter.
//
// Dawn's Node binding waits for GPU work (onSubmittedWorkDone, mapAsync) by polling its event queue from a
// native callback that re-arms itself with the global setImmediate as long as something is pending: a busy loop
// on the main thread. With a real GPU that costs an idle core. With lavapipe the GPU *is* the CPU: its worker
// threads (LP_NUM_THREADS) share the machine with that loop, and on the 2-core machine the loop took one core of
// two, leaving the two lavapipe workers at a third of a core each while a toy training step ran.
//
// The busy loop also allocated a JavaScript function per poll, and the garbage collections it caused were what
// released Dawn's finished objects in time: a GPUBindGroup's descriptor set goes back to the driver only when
// its wrapper is finalized, and lavapipe maps memory for every descriptor set. Throttled, a toy training run
// reached the kernel's vm.max_map_count (65530) within 40 steps and segfaulted. So the runtime counts the bind
// groups it creates and runs a full collection (collectGarbage) at the next wait after every
// BIND_GROUPS_PER_COLLECTION of them.
//
// throttleDawnPolling() wraps the global setImmediate so that native callbacks (Dawn's; JavaScript callbacks pass
// through untouched) keep polling immediately for the first POLL_SPIN_MS of a wait, which keeps short waits
// short, and are re-armed on a 1 ms timer after that. A wait then costs its latency plus at most ~1 ms.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** How long a wait polls back to back before it falls back to the timer (ms). */
export const POLL_SPIN_MS = 0.25;
/** Polls further apart than this (ms) start a new wait. */
const NEW_WAIT_GAP_MS = 3;

/** Bind groups created between two full collections (each may hold a mapped descriptor set on lavapipe). */
export const BIND_GROUPS_PER_COLLECTION = 16384;

let gcFn: (() => void) | null = null;

/** A full V8 garbage collection, so Dawn's unreachable wrappers are finalized and their objects released. */
export function collectGarbage(): void {
  if (!gcFn) {
    // --expose-gc at run time: the flag makes the next context get a global gc().
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

let installed = false;
let enabled = false;

const isNative = (f: unknown): boolean => typeof f === 'function' && Function.prototype.toString.call(f).endsWith('{ [native code] }');

/** Turns the throttle on (installing the wrapper once per process) or off (polls back to back again: A/B runs). */
export function throttleDawnPolling(on = true): void {
  enabled = on;
  if (installed || !on) return;
  const immediate = globalThis.setImmediate;
  let waitStart = 0;
  let lastPoll = -Infinity;
  const wrapped = function (this: unknown, cb: (...a: unknown[]) => void, ...args: unknown[]) {
    if (enabled && isNative(cb)) {
      const now = performance.now();
      if (now - lastPoll > NEW_WAIT_GAP_MS) waitStart = now;
      lastPoll = now;
      if (now - waitStart > POLL_SPIN_MS) return setTimeout(cb, 1, ...args);
    }
    return immediate(cb, ...args);
  };
  // Keep setImmediate's own properties (util.promisify's custom hook).
  Object.assign(wrapped, immediate);
  globalThis.setImmediate = wrapped as unknown as typeof setImmediate;
  installed = true;
}

/** Whether native polls are throttled now. */
export const dawnPollingThrottled = (): boolean => enabled;
