// Mixed precision for the compute-heavy ops (issue 12), in the spirit of torch.autocast: inside
// withAutocast, matmul / linear / loraLinear / conv2d / attention run on the fragment kernels with f16
// operands and f32 accumulation (tensor cores where the device has subgroup matrices), and so does any
// call that receives an f16 tensor (a model whose frozen weights were stored in f16, Module.half()).
//
// Policy (documented deviation from torch: outputs stay f32):
//   - operands: f16 tensors are read as they are; f32 ones are rounded to f16 when the kernel stages
//     them (no extra pass). When the op is recorded for backward, an f32 activation is cast to f16
//     first, so what the tape keeps for the backward is f16 (half the activation memory).
//   - outputs: f32, unless the activation input itself was f16; so the f32 ops around them (norms,
//     softmax, elementwise, losses: what torch.autocast also runs in f32) work unchanged.
//   - gradients: f32 (the tape accumulates and the optimizers step in f32; trainable parameters stay
//     f32 master copies). Use a dynamic loss scale (src/optim/loss_scale.ts) for f16 backward.
// On an adapter without shader-f16 + subgroups, f16 inputs are widened and the f32 kernels run.
//
// The existing ops call the route* functions first (one line each) and continue with their own f32
// path when a route returns null.
import { isGradEnabled } from '../../autograd/tape.js';
import { Tensor, tidy } from '../tensor.js';
import { fragKernelsAvailable } from '../plan/frag.js';
import { preferGemmConv, type ConvGeometry } from '../plan/conv16.js';
import { settings } from '../../settings.js';
import { ATTN16_MAX_HEAD_DIM } from '../plan/attn16.js';
import { add, unary } from './elementwise.js';
import { cast } from './cast.js';
import { reshape } from './layout.js';
import { matmulF16 } from './matmul_f16.js';
import { conv2dFrag } from './conv2d_f16.js';
import { attentionF16 } from './attention_f16.js';
import { loraLinearF16 } from './lora_f16.js';
import type { MatmulActivation } from '../plan/matmul.js';

let depth = 0;

/** Runs fn with autocast on (nested calls stack; an async fn keeps it on until its promise settles). */
export function withAutocast<R>(fn: () => R): R {
  depth++;
  let out: R;
  try {
    out = fn();
  } catch (e) {
    depth--;
    throw e;
  }
  if (out instanceof Promise) return out.finally(() => { depth--; }) as R;
  depth--;
  return out;
}

/** Whether autocast is on here. */
export function autocastEnabled(): boolean {
  return depth > 0;
}

type T = Tensor | null | undefined;
const anyF16 = (ts: T[]) => ts.some((t) => t?.dtype === 'f16');
const recorded = (ts: T[]) => isGradEnabled() && ts.some((t) => t?.requiresGrad);

/** Whether these operands go to the f16 kernels, to the f32 ones after widening ('widen'), or stay put (null). */
function decide(ts: T[]): 'f16' | 'widen' | null {
  if (!anyF16(ts) && depth === 0) return null;
  if (fragKernelsAvailable('f16')) return 'f16';
  return anyF16(ts) ? 'widen' : null;
}

// The helpers below hand over an operand itself when it needs no cast, never `t.retain()`: a retained
// handle is a plain view (no tape node, requiresGrad false), so the op would record it as a constant
// and the gradient of that operand — a LoRA branch feeding a residual, an f16 activation — would be
// silently dropped. tidy() frees only what the route itself created, so the inputs are safe as they are.

/** The activation as the f16 kernels take it: cast to f16 when the op is recorded (the tape then keeps f16). */
function activationIn(x: Tensor, all: T[]): Tensor {
  return x.dtype === 'f32' && recorded(all) ? cast(x, 'f16') : x;
}

/** t widened to f32 (a recorded cast) or t itself. */
const f32 = (t: T): T => (t && t.dtype === 'f16' ? cast(t, 'f32') : t);

export interface MatmulRouteOptions {
  transA?: boolean; transB?: boolean; bias?: Tensor; biasRows?: boolean; activation?: MatmulActivation; residual?: Tensor; variant?: string;
}

/**
 * matmul's route: the f16 product (bias per column and activation fused; a per-row bias and a residual
 * added by f32 ops after it), or `impl` on widened operands, or null (the f32 path as usual).
 */
export function routeMatmul<O extends MatmulRouteOptions>(a: Tensor, b: Tensor, o: O, impl: (a: Tensor, b: Tensor, o: O) => Tensor): Tensor | null {
  if (o.variant) return null;
  const all = [a, b, o.bias, o.residual];
  const how = decide(all);
  if (!how) return null;
  return tidy(() => {
    if (how === 'widen') return impl(f32(a)!, f32(b)!, { ...o, bias: f32(o.bias) ?? undefined, residual: f32(o.residual) ?? undefined });
    const out = a.dtype === 'f16' && !o.residual ? 'f16' : 'f32';
    const colBias = o.biasRows ? undefined : o.bias;
    const late = !!o.biasRows || !!o.residual;
    let y = matmulF16(activationIn(a, all), b, { transA: o.transA, transB: o.transB, bias: colBias, activation: late ? 'none' : o.activation, out: late ? 'f32' : out });
    if (o.biasRows && o.bias) y = add(y, reshape(f32(o.bias)!, [-1, 1])); // reshape: view() would drop the bias's gradient
    if (late && o.activation && o.activation !== 'none') y = unary(o.activation, y);
    if (o.residual) y = add(y, f32(o.residual)!);
    return y;
  });
}

export interface ConvRouteOptions { variant?: string; shift?: Tensor; residual?: Tensor }

/**
 * conv2d's route (geometry already checked by conv2d): the fragment conv with f16 operands; or, for
 * f32 operands, the split-K 'gemm' variant with f32 staging when forced (variant or
 * settings.conv2dVariant) or planned (preferGemmConv: low resolutions on GPUs). Shift and residual
 * are added after it by f32 ops. Null: conv2d's own kernels.
 */
export function routeConv2d<O extends ConvRouteOptions>(
  x: Tensor, w: Tensor, bias: T, g: ConvGeometry, o: O, impl: (x: Tensor, w: Tensor, bias: Tensor | null, o: O) => Tensor,
): Tensor | null {
  const all = [x, w, bias, o.shift, o.residual];
  const how = decide(all);
  const forced = o.variant ?? settings.conv2dVariant;
  const gemm32 = !how && (forced === 'gemm' || (!forced && preferGemmConv(g))) && fragKernelsAvailable('f32');
  if (!how && !gemm32) return null;
  return tidy(() => {
    if (how === 'widen') return impl(f32(x)!, f32(w)!, f32(bias) ?? null, { ...o, shift: f32(o.shift) ?? undefined, residual: f32(o.residual) ?? undefined });
    const late = !!o.shift || !!o.residual;
    let y = gemm32
      ? conv2dFrag(x, w, bias, g, { staging: 'f32', out: 'f32' })
      : conv2dFrag(activationIn(x, all), w, bias, g, { out: x.dtype === 'f16' && !late ? 'f16' : 'f32' });
    if (o.shift) y = add(y, reshape(f32(o.shift)!, [g.n, g.o, 1, 1]));
    if (o.residual) y = add(y, f32(o.residual)!);
    return y;
  });
}

/** attention's route: the fragment attention for head dims ≤ 160; larger heads (the VAE's 512) widen to the f32 kernel. */
export function routeAttention<O extends { scale?: number; causal?: boolean }>(
  q: Tensor, k: Tensor, v: Tensor, heads: number, o: O, impl: (q: Tensor, k: Tensor, v: Tensor, heads: number, o: O) => Tensor,
): Tensor | null {
  const all = [q, k, v];
  const how = decide(all);
  if (!how) return null;
  const D = q.shape[q.rank - 1] / heads;
  if (how === 'widen' || !(D <= ATTN16_MAX_HEAD_DIM)) {
    if (!anyF16(all)) return null;
    return tidy(() => impl(f32(q)!, f32(k)!, f32(v)!, heads, o));
  }
  return tidy(() => {
    // One dtype for the three: f16 when any is f16 or the op is recorded, else they stay f32.
    const to16 = anyF16(all) || recorded(all);
    const [qq, kk, vv] = all.map((t) => (to16 && t.dtype === 'f32' ? cast(t, 'f16') : t));
    return attentionF16(qq, kk, vv, heads, { scale: o.scale, causal: o.causal, out: q.dtype === 'f16' ? 'f16' : 'f32' });
  });
}

/** loraLinear's route: the fragment LoRA linear (one product with the low-rank term as its tail). */
export function routeLora(
  x: Tensor, W: Tensor, b: T, A: Tensor, B: Tensor, scale: number,
  impl: (x: Tensor, W: Tensor, b: Tensor | null, A: Tensor, B: Tensor, s: number) => Tensor,
): Tensor | null {
  const all = [x, W, b, A, B];
  const how = decide(all);
  if (!how) return null;
  return tidy(() => {
    if (how === 'widen') return impl(f32(x)!, f32(W)!, f32(b) ?? null, f32(A)!, f32(B)!, scale);
    return loraLinearF16(activationIn(x, all), W, b, A, B, scale, { out: x.dtype === 'f16' ? 'f16' : 'f32' });
  });
}
