// The LPO objective for a mini-batch of step-level pairs (LPO-SPEC §5.1–5.2; SPO's clamped-ratio DPO).
//
// For each pair (x_t, t, c, x_w, x_l): ε̂ of the policy and of the reference with CFG (one guided forward per
// model gives μ for both the winner and the loser, since they share x_t), μ and σ_t of the DDIM η = 1 step,
// log π(x|x_t) as the per-element MEAN of the Gaussian log-density (x detached), then
//   r = clamp(exp(log π_θ − log π_ref), 1 − ε, 1 + ε),  L = −mean log σ(β·log r_w − β·log r_l)
// through the fused step-DPO kernel (zero gradient for a clamped ratio). β = 500, ε = 0.1, CFG 5.0.
import { ShapeError } from '../errors.js';
import { noGrad } from '../autograd/tape.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { stepDpoLoss } from '../tensor/ops/dpo.js';
import { expandTo } from '../tensor/ops/elementwise.js';
import { reshape } from '../tensor/ops/layout.js';
import { ddimLogProb, type DDIMScheduler } from '../diffusion/ddim.js';
import type { UNetLike } from '../diffusion/pipeline.js';
import { cfgNoise, referenceCfgNoise, type PolicyUNet } from './cfg.js';

/** A mini-batch of P pairs, stacked. */
export interface PairBatch {
  /** x_t [P, C, h, w] */
  xt: Tensor;
  /** t of each pair (the step's current timestep; prev = t − 1000/steps, clamped at 0 as the authors do). */
  timesteps: readonly number[];
  /** The prompt's text-encoder context [P, L, D]. */
  cond: Tensor;
  /** Winner and loser x_{t−1} [P, C, h, w]. */
  xw: Tensor;
  xl: Tensor;
}

export interface LpoLossOptions {
  guidanceScale?: number;
  eta?: number;
  beta?: number;
  /** Ratio clamp ε: r ∈ [1 − ε, 1 + ε]. */
  clipEps?: number;
  /** A separate frozen reference U-Net; default: the policy with its LoRA bypassed. */
  reference?: UNetLike;
}

export const LPO_DEFAULTS = { guidanceScale: 5, eta: 1, beta: 500, clipEps: 0.1 } as const;

// A type alias (not an interface) so tidy() can return it.
export type PairLogProbs = {
  /** log π(x_w | x_t) and log π(x_l | x_t), [P]. */
  w: Tensor;
  l: Tensor;
  /** μ(x_t, t) [P, C, h, w]. */
  mean: Tensor;
  std: number[];
};

/**
 * Log-probabilities of the winner and the loser under the Gaussian step whose mean comes from the noise
 * prediction `eps` (differentiable w.r.t. eps; x_w, x_l detached).
 */
export function pairLogProbs(scheduler: DDIMScheduler, eps: Tensor, timesteps: readonly number[], xt: Tensor, xw: Tensor, xl: Tensor, eta: number): PairLogProbs {
  return tidy(() => {
    const r = scheduler.stepWithLogProb(eps, timesteps, xt, { eta, prevSample: xw });
    const l = ddimLogProb(xl, r.mean, r.stdDevT);
    return { w: r.logProb, l, mean: r.mean, std: r.stdDevT };
  });
}

export interface LpoLossOutput {
  /** Scalar loss; backward() reaches the policy's trainable parameters. */
  loss: Tensor;
  policy: PairLogProbs;
  reference: PairLogProbs;
}

function checkBatch(b: PairBatch): void {
  const P = b.xt.shape[0];
  const s = b.xt.shape.join();
  if (b.xw.shape.join() !== s || b.xl.shape.join() !== s) throw new ShapeError(`lpoLoss: x_t [${b.xt.shape}], x_w [${b.xw.shape}] and x_l [${b.xl.shape}] must have one shape`);
  if (b.timesteps.length !== P) throw new ShapeError(`lpoLoss: ${b.timesteps.length} timesteps for ${P} pairs`);
  if (b.cond.rank !== 3 || b.cond.shape[0] !== P) throw new ShapeError(`lpoLoss: context must be [${P}, L, D], got [${b.cond.shape}]`);
}

/** The reference model's log-probabilities of a batch (no gradient; the LoRA bypassed unless `reference`). */
export function referencePairLogProbs(policy: PolicyUNet, scheduler: DDIMScheduler, batch: PairBatch, uncond: Tensor, opts: LpoLossOptions = {}): PairLogProbs {
  checkBatch(batch);
  const { xt, timesteps, cond, xw, xl } = batch;
  const g = opts.guidanceScale ?? LPO_DEFAULTS.guidanceScale;
  return noGrad(() => tidy(() => {
    const eps = referenceCfgNoise(policy, xt, timesteps, cond, uncond, g, opts.reference);
    return pairLogProbs(scheduler, eps, timesteps, xt, xw, xl, opts.eta ?? LPO_DEFAULTS.eta);
  }));
}

/** The policy's log-probabilities of a batch, on the tape (differentiable w.r.t. its trainable parameters). */
export function policyPairLogProbs(policy: PolicyUNet, scheduler: DDIMScheduler, batch: PairBatch, uncond: Tensor, opts: LpoLossOptions = {}): PairLogProbs {
  checkBatch(batch);
  const { xt, timesteps, cond, xw, xl } = batch;
  const g = opts.guidanceScale ?? LPO_DEFAULTS.guidanceScale;
  return tidy(() => pairLogProbs(scheduler, cfgNoise(policy, xt, timesteps, cond, uncond, g), timesteps, xt, xw, xl, opts.eta ?? LPO_DEFAULTS.eta));
}

/** The clamped-ratio DPO loss of given log-probabilities (the fused kernel). */
export function lpoLossFromLogProbs(policy: PairLogProbs, reference: PairLogProbs, opts: LpoLossOptions = {}): Tensor {
  return stepDpoLoss(policy.w, reference.w, policy.l, reference.l, { beta: opts.beta ?? LPO_DEFAULTS.beta, eps: opts.clipEps ?? LPO_DEFAULTS.clipEps });
}

/** The LPO loss of one mini-batch; `uncond` is the encoded "" ([1, L, D]). The caller disposes the outputs. */
export function lpoLoss(policy: PolicyUNet, scheduler: DDIMScheduler, batch: PairBatch, uncond: Tensor, opts: LpoLossOptions = {}): LpoLossOutput {
  const reference = referencePairLogProbs(policy, scheduler, batch, uncond, opts);
  const pol = policyPairLogProbs(policy, scheduler, batch, uncond, opts);
  return { loss: lpoLossFromLogProbs(pol, reference, opts), policy: pol, reference };
}

/**
 * log π of K candidates per item: `cands` [K·B, C, h, w] k-major (row k·B + b), `mean` [B, C, h, w] (the
 * gradient reaches it), σ_t per item. Returns [K·B].
 */
export function candidateLogProbs(cands: Tensor, mean: Tensor, std: readonly number[], K: number): Tensor {
  const [B, ...rest] = mean.shape;
  if (cands.shape[0] !== K * B || cands.shape.slice(1).join() !== rest.join()) throw new ShapeError(`candidateLogProbs: candidates [${cands.shape}] are not ${K} × [${mean.shape}]`);
  return tidy(() => {
    const mu = reshape(expandTo(reshape(mean, [1, B, ...rest]), [K, B, ...rest]), [K * B, ...rest]);
    return ddimLogProb(cands, mu, Array.from({ length: K * B }, (_, i) => std[i % B]));
  });
}

/**
 * μ(x_t, t) and σ_t of the DDIM step for the noise prediction eps, from the scheduler's own step (the
 * log-probability it also computes, of x_t itself, is discarded: one code path for μ everywhere).
 */
export function ddimMean(scheduler: DDIMScheduler, eps: Tensor, timesteps: number | readonly number[], xt: Tensor, eta: number): { mean: Tensor; std: number[] } {
  const r = scheduler.stepWithLogProb(eps, timesteps, xt, { eta, prevSample: xt });
  for (const t of [r.logProb, r.predOriginalSample, r.prevSample]) t.dispose();
  return { mean: r.mean, std: r.stdDevT };
}

/** Frees the tensors of a loss output (after backward). */
export function disposeLossOutput(o: LpoLossOutput): void {
  for (const p of [o.policy, o.reference]) for (const t of [p.w, p.l, p.mean]) t.dispose();
  o.loss.dispose();
}
