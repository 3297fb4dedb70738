// Classifier-free-guided noise predictions of the policy and of the frozen reference (LPO-SPEC §4.1, §5.1,
// §5.3, §9.7): the U-Net runs once on [uncond; cond] with one timestep per item, and
// ε̂ = ε̂_u + g·(ε̂_c − ε̂_u). Gradients flow through both halves of the policy (the authors' unconditional
// branch carries the LoRA and is not detached).
//
// The reference model is the policy's own U-Net with every LoRA adapter bypassed, not a second copy.
// Why: a bypassed LoRALinear computes x·Wᵀ + b with the same weights and the same kernel as the base layer,
// so the reference is bit-for-bit the frozen base (the authors' `copy.deepcopy(unet)` taken before the
// adapter is added), and it cannot drift from the policy's base weights. What it saves at SD1.5 size: the
// U-Net has 859,520,964 parameters, so a second copy would hold 3.44 GB in float32 (our weights' dtype;
// 3.20 GiB) or 1.72 GB in float16 (the authors' fp16 copy), against 0 bytes here. The LoRA itself (rank 4
// on the 128 to_q/to_k/to_v/to_out.0 projections of the 16 transformer blocks) is 797,184 parameters,
// 3.2 MB. The price: the reference pass cannot run while the adapters are merged (LoRALinear refuses), and
// the two passes run one after the other on one module (no concurrent use), which is how we run them anyway.
import { LpoError, ShapeError } from '../errors.js';
import { noGrad } from '../autograd/tape.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { add, expandTo, scale, sub } from '../tensor/ops/elementwise.js';
import { concat, slice } from '../tensor/ops/layout.js';
import type { UNetLike } from '../diffusion/pipeline.js';
import type { Module } from '../nn/module.js';
import { loraLayers, withLoRABypassed } from '../nn/lora.js';

/** A U-Net that the LPO code can run (the policy: a Module so its adapters can be bypassed). */
export type PolicyUNet = UNetLike & Module;

/**
 * ε̂ for x [B, C, h, w] at one timestep per item (or one for all), prompt context `cond` [B, L, D] and the
 * negative context `uncond` ([1, L, D], broadcast, or [B, L, D]); g ≤ 1 runs the conditional branch alone.
 */
export function cfgNoise(unet: UNetLike, x: Tensor, t: number | readonly number[], cond: Tensor, uncond: Tensor, g: number): Tensor {
  const B = x.shape[0];
  if (cond.rank !== 3 || cond.shape[0] !== B) throw new ShapeError(`cfgNoise: context must be [${B}, L, D], got [${cond.shape}]`);
  if (uncond.rank !== 3 || (uncond.shape[0] !== 1 && uncond.shape[0] !== B) || uncond.shape[1] !== cond.shape[1] || uncond.shape[2] !== cond.shape[2]) {
    throw new ShapeError(`cfgNoise: negative context must be [1 or ${B}, ${cond.shape[1]}, ${cond.shape[2]}], got [${uncond.shape}]`);
  }
  const ts = typeof t === 'number' ? new Array<number>(B).fill(t) : [...t];
  if (ts.length !== B) throw new ShapeError(`cfgNoise: ${ts.length} timesteps for a batch of ${B}`);
  return tidy(() => {
    if (!(g > 1)) return unet.forward(x, ts, cond).sample;
    const neg = uncond.shape[0] === B ? uncond : expandTo(uncond, cond.shape);
    const eps = unet.forward(concat([x, x], 0), [...ts, ...ts], concat([neg, cond], 0)).sample;
    const u = slice(eps, 0, { end: B });
    const c = slice(eps, 0, { start: B, end: 2 * B });
    return add(u, scale(sub(c, u), g));
  });
}

/**
 * The reference model's ε̂ (no gradient): `reference` when given (a separate frozen U-Net), else the policy
 * with its adapters bypassed (see the file comment).
 */
export function referenceCfgNoise(
  policy: PolicyUNet, x: Tensor, t: number | readonly number[], cond: Tensor, uncond: Tensor, g: number, reference?: UNetLike,
): Tensor {
  return noGrad(() => {
    if (reference) return cfgNoise(reference, x, t, cond, uncond, g);
    if (loraLayers(policy).length === 0) throw new LpoError('referenceCfgNoise: the policy has no LoRA adapters to bypass; pass a separate reference U-Net');
    return withLoRABypassed(policy, () => cfgNoise(policy, x, t, cond, uncond, g));
  });
}
