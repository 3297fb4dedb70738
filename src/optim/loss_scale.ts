// Dynamic loss scaling for f16 backward passes (issue 12), as torch.cuda.amp.GradScaler: the loss is
// multiplied by a large scale before backward, so gradients that would underflow f16 in the f16 kernels
// (their operands are rounded to f16: values below 2^-24 vanish) stay representable; the f32 gradients
// are divided by the same scale before the optimizer step. A step whose gradients overflowed (±inf or
// NaN anywhere) is skipped and the scale shrinks; after `growthInterval` good steps in a row it grows.
//
// With the trainers' StepGuard (src/optim/guard.ts), which checks finiteness, skips the bad step and
// reports every verdict to its `scaler` (this class implements LossScaleListener):
//
//   const scaler = new DynamicLossScaler();
//   const guard = new StepGuard({ scaler, maxConsecutive: scaler.settleSteps() + 5 });
//   backward(scaler.scaleLoss(loss));          // loss · scale
//   scaler.unscale(optimizer.params);          // grads / scale (inf and NaN stay so)
//   await guard.step(optimizer, [loss]);       // checks, steps or skips, then scaler.update(finite)
//
// Without a guard, `await scaler.step(optimizer)` does the same check (one readback) itself. The guard
// counts consecutive skips: while the scale settles from initScale it may skip up to settleSteps() in
// a row, so give it at least that many (above). `overflows` and `lastFinite` expose what happened.
import { ArgumentError } from '../errors.js';
import { noGrad } from '../autograd/tape.js';
import { Tensor, keep } from '../tensor/tensor.js';
import { scale as scaleOp } from '../tensor/ops/elementwise.js';
import { StepGuard, type LossScaleListener } from './guard.js';
import type { AdamW } from './adamw.js';

export interface LossScaleOptions {
  /** Starting scale (default 2^16, torch's). */
  initScale?: number;
  /** Factor after growthInterval good steps (default 2). */
  growthFactor?: number;
  /** Factor after an overflow (default 0.5). */
  backoffFactor?: number;
  /** Good steps in a row before growing (default 2000). */
  growthInterval?: number;
  /** Bounds of the scale (default 1 and 2^24). */
  minScale?: number;
  maxScale?: number;
}

/** What a checkpoint keeps of a scaler (resume continues with the same scale). */
export interface LossScaleState { scale: number; goodSteps: number; overflows: number }

export class DynamicLossScaler implements LossScaleListener {
  scale: number;
  /** Good steps since the last change. */
  goodSteps = 0;
  /** Steps skipped for non-finite gradients so far. */
  overflows = 0;
  /** The last verdict (true before any). */
  lastFinite = true;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  readonly minScale: number;
  readonly maxScale: number;

  constructor(opts: LossScaleOptions = {}) {
    this.scale = opts.initScale ?? 2 ** 16;
    this.growthFactor = opts.growthFactor ?? 2;
    this.backoffFactor = opts.backoffFactor ?? 0.5;
    this.growthInterval = opts.growthInterval ?? 2000;
    this.minScale = opts.minScale ?? 1;
    this.maxScale = opts.maxScale ?? 2 ** 24;
    const pos = (n: number) => Number.isFinite(n) && n > 0;
    if (!pos(this.scale) || !(this.growthFactor > 1) || !(this.backoffFactor > 0 && this.backoffFactor < 1)
      || !(Number.isInteger(this.growthInterval) && this.growthInterval >= 1) || !pos(this.minScale) || !(this.maxScale >= this.minScale)
      || this.scale < this.minScale || this.scale > this.maxScale) {
      throw new ArgumentError(`DynamicLossScaler: bad options ${JSON.stringify(opts)} (scales > 0 within [minScale, maxScale], growthFactor > 1, 0 < backoffFactor < 1, growthInterval a positive integer)`);
    }
  }

  /** Overflow skips in a row that take the scale from where it is to minScale: a guard should allow at least this many. */
  settleSteps(): number {
    return Math.ceil(Math.log(this.scale / this.minScale) / -Math.log(this.backoffFactor));
  }

  /** loss · scale (differentiable: backward from it gives scaled gradients). */
  scaleLoss(loss: Tensor): Tensor {
    return scaleOp(loss, this.scale);
  }

  /** Divides the gradients of `params` by the scale (replacing each .grad); ±inf and NaN stay non-finite. */
  unscale(params: readonly Tensor[]): void {
    const inv = 1 / this.scale;
    noGrad(() => {
      for (const p of params) {
        const g = p.grad;
        if (!g) continue;
        p.grad = keep(scaleOp(g, inv));
        g.dispose();
      }
    });
  }

  /** A step's verdict (LossScaleListener; the StepGuard calls it): back off after an overflow, grow after a run of good steps. */
  update(finite: boolean): void {
    this.lastFinite = finite;
    if (!finite) {
      this.overflows++;
      this.goodSteps = 0;
      this.scale = Math.max(this.minScale, this.scale * this.backoffFactor);
      return;
    }
    if (++this.goodSteps >= this.growthInterval) {
      this.goodSteps = 0;
      this.scale = Math.min(this.maxScale, this.scale * this.growthFactor);
    }
  }

  /**
   * Without a StepGuard: unscales the optimizer's gradients, checks them (one readback), steps when all
   * are finite, frees the gradients and updates the scale. Returns whether it stepped.
   */
  async step(optimizer: AdamW): Promise<boolean> {
    this.unscale(optimizer.params);
    const { finite } = await StepGuard.check(optimizer.params.map((p) => p.grad));
    if (finite) optimizer.step();
    optimizer.zeroGrad();
    this.update(finite);
    return finite;
  }

  state(): LossScaleState {
    return { scale: this.scale, goodSteps: this.goodSteps, overflows: this.overflows };
  }

  loadState(s: LossScaleState): void {
    if (!(Number.isFinite(s.scale) && s.scale > 0) || !Number.isInteger(s.goodSteps) || s.goodSteps < 0) throw new ArgumentError(`DynamicLossScaler: bad state ${JSON.stringify(s)}`);
    this.scale = s.scale;
    this.goodSteps = s.goodSteps;
    this.overflows = s.overflows ?? 0;
  }
}
