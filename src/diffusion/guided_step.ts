// One guided DDIM sampling step as one launch (src/tensor/ops/guidance.ts ddimStepFused): the CFG combine,
// x̂0 and x_{t−1} = μ + σ_t z together, instead of two slices, a sub, a scale, an add and the scheduler's
// per-item linear combinations. Falls back to the separate ops (the same values) when the scheduler clips x̂0
// or fusion is off (settings.fuse).
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { add, scale, sub } from '../tensor/ops/elementwise.js';
import { slice } from '../tensor/ops/layout.js';
import { ddimStepFused } from '../tensor/ops/guidance.js';
import { settings } from '../settings.js';
import type { DDIMScheduler, StepOutput } from './ddim.js';

export interface GuidedStepOptions {
  /** CFG scale g: eps holds both halves [uncond; cond] ([2B, ...]); omit for an unguided eps [B, ...]. */
  guidanceScale?: number;
  eta?: number;
  /** Source of the variance noise (η > 0); default the scheduler's generator. */
  generator?: Generator;
}

/** x_{t−1} and x̂0 from the U-Net's raw output `eps` at timestep t for latents x [B, ...]. Sampling only (no gradient). */
export function guidedDdimStep(scheduler: DDIMScheduler, eps: Tensor, t: number, x: Tensor, o: GuidedStepOptions = {}): StepOutput {
  const eta = o.eta ?? 0;
  const B = x.shape[0];
  const guided = o.guidanceScale !== undefined;
  if (!settings.fuse || scheduler.config.clipSample) {
    return tidy(() => {
      let e = eps;
      if (guided) {
        const u = slice(eps, 0, { end: B });
        e = add(u, scale(sub(slice(eps, 0, { start: B, end: 2 * B }), u), o.guidanceScale!));
      }
      const r = scheduler.step(e, t, x, { eta, generator: o.generator });
      return { prevSample: r.prevSample, predOriginalSample: r.predOriginalSample };
    });
  }
  const sc = scheduler.batchStepScalars(t, B, eta);
  const noise = eta > 0 ? Tensor.randn(x.shape, o.generator ?? scheduler.generator) : undefined;
  const r = ddimStepFused(eps, x, sc.map((s) => ({ x0X: s.x0X, x0Out: s.x0Out, meanX: s.meanX, meanOut: s.meanOut, std: s.stdDevT })), {
    guidanceScale: o.guidanceScale, noise,
  });
  noise?.dispose();
  return { prevSample: r.prev, predOriginalSample: r.x0 };
}
