// nn.Linear products fused with their neighbours, in one launch (kernels/matmul_pro.wgsl): a LayerNorm of x's
// rows as the prologue (a transformer block's norm1/norm2/norm3 before the projections that read it), GEGLU as
// the epilogue (ff.net.0: value·gelu(gate) of the [.., 2N] product), and up to three weights over the same input
// (q/k/v of self-attention, k/v of cross-attention). Each fusion removes a launch; on lavapipe a small model is
// bound by the cost per launch.
//
// Autograd: the fused launch runs only when nothing is recorded (no grad, or no input that requires it), and
// under the tape the op is the unfused ops (layerNorm / geglu, then linear per weight), whose backward rules
// already exist. Sampling, the reference model and reward scoring run under noGrad, where launches matter.
import { ShapeError } from '../../errors.js';
import { isGradEnabled } from '../../autograd/tape.js';
import { gpu } from '../../gpu/runtime.js';
import { settings } from '../../settings.js';
import { Tensor, tidy } from '../tensor.js';
import { canRunMatmulPrologue, launchMatmulPrologue, normPrologueFits } from '../plan/matmul.js';
import { geglu } from './geglu.js';
import { linear } from './matmul.js';
import { layerNorm } from './norm.js';
import { autocastEnabled } from './autocast.js';

export interface LinearPrologueOptions {
  /** LayerNorm of x's last dim before the products: y = (x − mean)·rstd·weight + bias. */
  norm?: { weight: Tensor; bias: Tensor; eps: number };
  /** GEGLU of the product (one weight [2N, K]): returns value·gelu(gate) [..., N], value first, erf GELU. */
  geglu?: boolean;
  /** One bias per weight ([N_i]; undefined: none). The fused launch takes a bias with one weight only. */
  biases?: readonly (Tensor | undefined)[];
  /** Of the output's shape, added after the product (one weight, no geglu): a skip connection. */
  residual?: Tensor;
}

/**
 * linear(norm(x), weights[i], biases[i]) for each weight [N_i, K] (norm: opts.norm or none), then geglu with
 * opts.geglu. x: [..., K]. Returns one [..., N_i] tensor per weight ([..., N/2] with geglu).
 */
export function linearPrologue(x: Tensor, weights: readonly Tensor[], opts: LinearPrologueOptions = {}): Tensor[] {
  const { norm, residual } = opts;
  const biases = opts.biases ?? [];
  if (weights.length < 1 || weights.length > 3) throw new ShapeError(`linearPrologue: takes 1 to 3 weights, got ${weights.length}`);
  if (residual && (weights.length > 1 || opts.geglu)) throw new ShapeError('linearPrologue: a residual needs exactly one weight and no geglu');
  if (opts.geglu && (weights.length > 1 || weights[0].shape[0] % 2 !== 0)) throw new ShapeError(`linearPrologue: geglu takes one weight [2N, K], got ${weights.map((w) => `[${w.shape}]`).join(', ')}`);
  if (biases.length > weights.length) throw new ShapeError(`linearPrologue: ${biases.length} biases for ${weights.length} weights`);
  const K = x.shape[x.rank - 1];
  if (x.rank < 2) throw new ShapeError(`linearPrologue: x [${x.shape}] must be [..., K], rank ≥ 2`);
  for (const w of weights) {
    if (w.rank !== 2 || w.shape[1] !== K) throw new ShapeError(`linearPrologue: weight [${w.shape}] must be [N, ${K}] (x [${x.shape}])`);
  }

  const N = weights[0].shape[0];
  const all = [x, ...weights, ...biases, residual, norm?.weight, norm?.bias].filter((t): t is Tensor => !!t);
  const recording = isGradEnabled() && all.some((t) => t.requiresGrad);
  const fused = settings.fuse && !recording && !autocastEnabled() && canRunMatmulPrologue() && K % 4 === 0 && K > 0
    && all.every((t) => t.dtype === 'f32')
    && weights.every((w) => w.shape[0] === N)
    && (weights.length === 1 || biases.every((b) => !b))
    && (!norm || (norm.weight.shape.join() === `${K}` && norm.bias.shape.join() === `${K}`));
  if (!fused) {
    // The unfused ops: the tape's path, the LPO_FUSE=0 baseline, autocast (f16 products), and shapes or adapters
    // the kernel does not take.
    return tidy(() => {
      const a = norm ? layerNorm(x, norm) : x;
      const ys = weights.map((w, i) => linear(a, w, biases[i], { residual }));
      return opts.geglu ? [geglu(ys[0])] : ys;
    });
  }
  const bias = biases[0];
  if (bias && bias.shape.join() !== `${N}`) throw new ShapeError(`linearPrologue: bias [${bias.shape}] must be [${N}]`);
  const Nout = opts.geglu ? N / 2 : N;
  const outShape = [...x.shape.slice(0, -1), Nout];
  if (residual && residual.shape.join() !== outShape.join()) throw new ShapeError(`linearPrologue: residual [${residual.shape}] must be [${outShape}]`);
  const M = x.size / K;
  // Many rows: the norm as its own launch (its repeated work in the prologue would cost more than the launch).
  const normIn = norm && normPrologueFits(M) ? norm : undefined;
  const a = norm && !normIn ? layerNorm(x, norm) : x;
  const outs = weights.map(() => Tensor.empty(outShape));
  if (M > 0 && N > 0) {
    launchMatmulPrologue({
      M, N: Nout, K, geglu: opts.geglu,
      norm: normIn && { gamma: normIn.weight.buffer, beta: normIn.bias.buffer, eps: normIn.eps },
      a: a.buffer, w: weights.map((w) => w.buffer), c: outs.map((o) => o.buffer),
      bias: bias?.buffer, residual: residual?.buffer,
    });
  }
  if (a !== x) a.dispose();
  for (const o of outs) gpu().checkOutput('linearPrologue', o);
  return outs;
}
