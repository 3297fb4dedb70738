// nn.Linear products with a prologue on their input, in one launch (kernels/matmul_pro.wgsl): a LayerNorm of
// x's rows (a transformer block's norm1/norm2/norm3 before the projections that read it), or GEGLU of the
// up-projection (ff.net.2 reading ff.net.0's output), and up to three weights over the same input (q/k/v of
// self-attention, k/v of cross-attention). Each fusion removes a launch; on lavapipe a small model is bound by
// the cost per launch.
//
// Autograd: the fused launch runs only when nothing is recorded (no grad, or no input that requires it), and
// under the tape the op is the unfused ops (layerNorm / geglu, then linear per weight), whose backward rules
// already exist. Sampling, the reference model and reward scoring run under noGrad, where launches matter.
import { ShapeError } from '../../errors.js';
import { isGradEnabled } from '../../autograd/tape.js';
import { gpu } from '../../gpu/runtime.js';
import { settings } from '../../settings.js';
import { Tensor, tidy } from '../tensor.js';
import { canRunMatmulPrologue, launchMatmulPrologue } from '../plan/matmul.js';
import { geglu } from './geglu.js';
import { linear } from './matmul.js';
import { layerNorm } from './norm.js';
import { autocastEnabled } from './autocast.js';

export interface LinearPrologueOptions {
  /** LayerNorm of x's last dim before the products: y = (x − mean)·rstd·weight + bias. */
  norm?: { weight: Tensor; bias: Tensor; eps: number };
  /** x is GEGLU's input h [..., 2·K]: the products read value·gelu(gate) (value first, erf GELU). */
  geglu?: boolean;
  /** One bias per weight ([N_i]; undefined: none). The fused launch takes a bias with one weight only. */
  biases?: readonly (Tensor | undefined)[];
  /** Of the output's shape, added after the product (one weight only): a skip connection. */
  residual?: Tensor;
}

/**
 * linear(prologue(x), weights[i], biases[i]) for each weight [N_i, K], with prologue LayerNorm (opts.norm),
 * GEGLU (opts.geglu) or none. x: [..., K] ([..., 2·K] with geglu). Returns one [..., N_i] tensor per weight.
 */
export function linearPrologue(x: Tensor, weights: readonly Tensor[], opts: LinearPrologueOptions = {}): Tensor[] {
  const { norm, residual } = opts;
  const biases = opts.biases ?? [];
  if (weights.length < 1 || weights.length > 3) throw new ShapeError(`linearPrologue: takes 1 to 3 weights, got ${weights.length}`);
  if (norm && opts.geglu) throw new ShapeError('linearPrologue: one prologue at a time (norm or geglu)');
  if (residual && weights.length > 1) throw new ShapeError('linearPrologue: a residual needs exactly one weight');
  if (biases.length > weights.length) throw new ShapeError(`linearPrologue: ${biases.length} biases for ${weights.length} weights`);
  const last = x.shape[x.rank - 1];
  const K = opts.geglu ? last / 2 : last;
  if (x.rank < 2 || !Number.isInteger(K)) throw new ShapeError(`linearPrologue: x [${x.shape}] must be [..., K]${opts.geglu ? ' with an even last dim (GEGLU)' : ''}, rank ≥ 2`);
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
      const a = norm ? layerNorm(x, norm) : opts.geglu ? geglu(x) : x;
      return weights.map((w, i) => linear(a, w, biases[i], { residual }));
    });
  }
  const bias = biases[0];
  if (bias && bias.shape.join() !== `${N}`) throw new ShapeError(`linearPrologue: bias [${bias.shape}] must be [${N}]`);
  const outShape = [...x.shape.slice(0, -1), N];
  if (residual && residual.shape.join() !== outShape.join()) throw new ShapeError(`linearPrologue: residual [${residual.shape}] must be [${outShape}]`);
  const outs = weights.map(() => Tensor.empty(outShape));
  const M = x.size / last;
  if (M > 0 && N > 0) {
    launchMatmulPrologue({
      M, N, K, rowStride: last, geglu: opts.geglu,
      norm: norm && { gamma: norm.weight.buffer, beta: norm.bias.buffer, eps: norm.eps },
      a: x.buffer, w: weights.map((w) => w.buffer), c: outs.map((o) => o.buffer),
      bias: bias?.buffer, residual: residual?.buffer,
    });
  }
  for (const o of outs) gpu().checkOutput('linearPrologue', o);
  return outs;
}
