// The LRM score s = exp(τ)·⟨T/‖T‖, V/‖V‖⟩ (LPO-SPEC §1.2, Eqn 9), composed from differentiable ops.
import { ShapeError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { div, exp, mul, sqrt, square } from '../tensor/ops/elementwise.js';
import { sum } from '../tensor/ops/reduce.js';
import { reshape } from '../tensor/ops/layout.js';

/** Each row divided by its L2 norm (x / x.norm(dim=-1, keepdim=True), as the reference code; no epsilon). */
export function l2Normalize(x: Tensor): Tensor {
  if (x.rank !== 2) throw new ShapeError(`l2Normalize: expects [N, D], got [${x.shape}]`);
  return tidy(() => div(x, sqrt(sum(square(x), 1, true))));
}

export interface CosineScores {
  /** [N] exp(τ)·cos(T_i, V_i). */
  scores: Tensor;
  /** [N, D] T / ‖T‖. */
  tNormalized: Tensor;
  /** [N, D] V / ‖V‖. */
  vNormalized: Tensor;
}

/** Row-wise scores of T [N, D] (one row per latent) against V [N, D], with τ = logitScale (a [] tensor). */
export function cosineScores(T: Tensor, V: Tensor, logitScale: Tensor): CosineScores {
  if (T.rank !== 2 || V.rank !== 2 || T.shape[0] !== V.shape[0] || T.shape[1] !== V.shape[1]) {
    throw new ShapeError(`LRM score: T [${T.shape}] and V [${V.shape}] must both be [N, D]`);
  }
  if (logitScale.size !== 1) throw new ShapeError(`LRM score: logit_scale must hold one value, got [${logitScale.shape}]`);
  return tidy(() => {
    const tNormalized = l2Normalize(T);
    const vNormalized = l2Normalize(V);
    const cos = sum(mul(tNormalized, vNormalized), 1);
    const scale = exp(logitScale.rank === 0 ? logitScale : reshape(logitScale, []));
    return { scores: mul(cos, scale), tNormalized, vNormalized };
  });
}
