// Step-wise GRPO (LPO-SPEC §6, paper Eq. 13 — a reconstruction: the authors' code has no GRPO). At one
// denoising step the K candidates of an x_t form a group; with LRM rewards r_k:
//   A_k = (r_k − mean r)/(std r + δ)          (unbiased std, δ = 1e-4, as the golden data)
//   ρ_k = exp(log π_θ(x_k) − log π_old(x_k))   (π_old: the policy that sampled the group)
//   J   = mean_groups[ mean_k min(ρ_k A_k, clamp(ρ_k, 1 − ε, 1 + ε) A_k) − β_KL·KL(π_θ ‖ π_ref) ]
// with ε = 0.1, β_KL = 0.1 and the closed-form KL of two Gaussians with equal σ_t, per-element mean:
//   KL = mean_CHW (μ_θ − μ_ref)²/(2σ_t²).   The loss is −J.
import { ShapeError, ArgumentError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { exp, maximum, minimum, mul, scale, square, sub, add } from '../tensor/ops/elementwise.js';
import { mean, meanAll, sumAll } from '../tensor/ops/reduce.js';
import { reshape } from '../tensor/ops/layout.js';
import { scaleBatch } from '../diffusion/ddim.js';

export interface GrpoOptions {
  /** PPO clip ε (default 0.1). */
  clip?: number;
  /** KL coefficient (default 0.1). */
  klBeta?: number;
}

export const GRPO_DEFAULTS = { clip: 0.1, klBeta: 0.1, advEps: 1e-4 } as const;

/**
 * Group-standardised advantages of rewards [K, B] (group = column b): (r − mean)/(std + δ), std with
 * Bessel's correction (K − 1), in float64. Returns [K, B] row-major.
 */
export function groupAdvantages(rewards: ArrayLike<number>, K: number, B: number, advEps: number = GRPO_DEFAULTS.advEps): Float64Array {
  if (!(K >= 2)) throw new ShapeError(`groupAdvantages: a group needs K ≥ 2 members, got ${K}`);
  if (rewards.length !== K * B) throw new ShapeError(`groupAdvantages: ${rewards.length} rewards for K = ${K} × B = ${B}`);
  const out = new Float64Array(K * B);
  for (let b = 0; b < B; b++) {
    let m = 0;
    for (let k = 0; k < K; k++) m += rewards[k * B + b];
    m /= K;
    let v = 0;
    for (let k = 0; k < K; k++) v += (rewards[k * B + b] - m) ** 2;
    const sd = Math.sqrt(v / (K - 1));
    for (let k = 0; k < K; k++) out[k * B + b] = (rewards[k * B + b] - m) / (sd + advEps);
  }
  return out;
}

/** Closed-form KL(N(μ_θ, σ²I) ‖ N(μ_ref, σ²I)) as a per-element mean: [B]. Differentiable in both means. */
export function gaussianKL(muPolicy: Tensor, muRef: Tensor, std: readonly number[]): Tensor {
  if (muPolicy.shape.join() !== muRef.shape.join()) throw new ShapeError(`gaussianKL: means [${muPolicy.shape}] and [${muRef.shape}] differ`);
  const B = muPolicy.shape[0];
  if (std.length !== B) throw new ShapeError(`gaussianKL: ${std.length} std devs for a batch of ${B}`);
  return tidy(() => {
    const m = mean(reshape(square(sub(muPolicy, muRef)), [B, muPolicy.size / B]), 1);
    return scaleBatch(m, std.map((s) => 1 / (2 * s * s)));
  });
}

/**
 * −mean_B[ mean_K min(ρA, clamp(ρ)A) − β_KL·kl ] for log-probabilities [K, B] (or [K·B]), advantages
 * [K, B] and kl [B]. Differentiable w.r.t. logpPolicy and kl; the gradient of a candidate whose clipped
 * term is the strictly smaller one is zero (the `minimum` op sends it to the constant side).
 */
export function grpoLoss(logpPolicy: Tensor, logpOld: Tensor, advantages: Tensor, kl: Tensor, opts: GrpoOptions = {}): Tensor {
  const clip = opts.clip ?? GRPO_DEFAULTS.clip;
  const klBeta = opts.klBeta ?? GRPO_DEFAULTS.klBeta;
  if (!(clip > 0 && clip < 1)) throw new ArgumentError(`grpoLoss: clip ε ${clip} must lie in (0, 1)`);
  const n = advantages.size;
  if (logpPolicy.size !== n || logpOld.size !== n) throw new ShapeError(`grpoLoss: log-probs [${logpPolicy.shape}], [${logpOld.shape}] and advantages [${advantages.shape}] differ in size`);
  const B = kl.size;
  if (B === 0 || n % B !== 0) throw new ShapeError(`grpoLoss: kl [${kl.shape}] does not divide ${n} candidates into groups`);
  return tidy(() => {
    const a = reshape(advantages, [n]);
    const ratio = exp(sub(reshape(logpPolicy, [n]), reshape(logpOld, [n])));
    const clipped = minimum(maximum(ratio, Tensor.fromArray([1 - clip], [1])), Tensor.fromArray([1 + clip], [1]));
    // a = ρA first: on a tie (ρ inside the band) the unclipped term takes the gradient.
    const surrogate = minimum(mul(ratio, a), mul(clipped, a));
    return add(scale(sumAll(surrogate), -1 / n), scale(meanAll(kl), klBeta));
  });
}
