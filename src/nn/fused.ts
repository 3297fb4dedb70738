// Projections with a fused epilogue or prologue: p(x) + residual or act(p(x)) in the projection's own matmul
// launch, and LayerNorm or GEGLU of the input, or several projections of one input, in one launch
// (src/tensor/ops/matmul_pro.ts), when the projections are plain f32 Linears; else each p's forward and separate
// ops (LoRA-wrapped and non-f32 projections). The blocks of the U-Net and the transformers use these for their
// skips, activations, norms and q/k/v (fewer launches: on lavapipe a small model is bound by the cost per launch).
import { Tensor, tidy } from '../tensor/tensor.js';
import { add, unary } from '../tensor/ops/elementwise.js';
import { geglu } from '../tensor/ops/geglu.js';
import { linear, type MatmulActivation } from '../tensor/ops/matmul.js';
import { linearPrologue } from '../tensor/ops/matmul_pro.js';
import { Linear, LoRALinear, type Projection } from './linear.js';
import type { LayerNorm } from './norm.js';
import { settings } from '../settings.js';

/** The weights of a projection that computes x·Wᵀ + b and nothing else. */
type PlainLinear = { readonly weight: Tensor; readonly bias: Tensor | null };

/**
 * The plain f32 x·Wᵀ + b behind `p`, or null (also when settings.fuse is off: the unfused baseline). A LoRA
 * adapter that is bypassed or merged computes exactly that with its own weight, so it takes the same fused
 * launches as a Linear: the LPO reference (the policy with its adapters bypassed) then stays bit-for-bit the
 * base model, which runs those launches too.
 */
function plainF32(p: Projection, x: Tensor): PlainLinear | null {
  if (!settings.fuse || x.dtype !== 'f32' || x.rank < 2) return null;
  // Bypassed and merged at once is an error that the adapter's own forward reports: it keeps that path.
  const plain = p instanceof Linear || (p instanceof LoRALinear && p.bypass !== p.isMerged);
  return plain && p.weight.dtype === 'f32' ? p : null;
}

/** p(x) + residual (the output's shape). */
export function projectAdd(p: Projection, x: Tensor, residual: Tensor): Tensor {
  const l = plainF32(p, x);
  if (l && residual.dtype === 'f32') return linear(x, l.weight, l.bias ?? undefined, { residual });
  return tidy(() => add(p.forward(x), residual));
}

/** act(p(x)). */
export function projectAct(p: Projection, x: Tensor, act: Exclude<MatmulActivation, 'none'>): Tensor {
  const l = plainF32(p, x);
  if (l) return linear(x, l.weight, l.bias ?? undefined, { activation: act });
  return tidy(() => unary(act, p.forward(x)));
}

/** The plain f32 Linears behind every projection in ps, or null when any is not one. */
function allPlain(ps: readonly Projection[], x: Tensor): PlainLinear[] | null {
  const ls = ps.map((p) => plainF32(p, x));
  return ls.every((l): l is PlainLinear => l !== null) ? ls : null;
}

const fusedArgs = (ls: PlainLinear[]) => ({ weights: ls.map((l) => l.weight), biases: ls.map((l) => l.bias ?? undefined) });

/** p(norm(x)) for each p in ps (1 to 3): the LayerNorm is the products' prologue, and the products one launch. */
export function projectNormed(ps: readonly Projection[], norm: LayerNorm, x: Tensor): Tensor[] {
  const ls = allPlain(ps, x);
  if (ls && norm.weight && norm.bias) {
    const { weights, biases } = fusedArgs(ls);
    return linearPrologue(x, weights, { norm: { weight: norm.weight, bias: norm.bias, eps: norm.eps }, biases });
  }
  return tidy(() => {
    const n = norm.forward(x);
    return ps.map((p) => p.forward(n));
  });
}

/** p(x) for each p in ps (1 to 3), in one launch (cross-attention's k and v of the context). */
export function projectMany(ps: readonly Projection[], x: Tensor): Tensor[] {
  const ls = allPlain(ps, x);
  if (ls) {
    const { weights, biases } = fusedArgs(ls);
    return linearPrologue(x, weights, { biases });
  }
  return ps.map((p) => p.forward(x));
}

/**
 * geglu(p(norm(x))) (norm optional): diffusers' GEGLU (value first, erf GELU) as the epilogue of its projection,
 * and the norm as its prologue, one launch.
 */
export function projectGeglu(p: Projection, x: Tensor, norm: LayerNorm | null): Tensor {
  const l = plainF32(p, x);
  if (l && (!norm || (norm.weight && norm.bias))) {
    const n = norm ? { weight: norm.weight!, bias: norm.bias!, eps: norm.eps } : undefined;
    return linearPrologue(x, [l.weight], { norm: n, geglu: true, biases: [l.bias ?? undefined] })[0];
  }
  return tidy(() => geglu(p.forward(norm ? norm.forward(x) : x)));
}
