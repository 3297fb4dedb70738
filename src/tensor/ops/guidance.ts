// Sampling-step ops (kernels/guidance.wgsl): the classifier-free-guidance combine, differentiable (LPO trains
// through it), and the whole guided DDIM update in one launch for sampling (no gradient).
import { ShapeError, DTypeError, LpoError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { isGradEnabled, record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';

const code = kernelModule('guidance');
const P = defineParams('guidance.wgsl', 'Params', { n: 'u32', per: 'u32', g: 'f32' });
const WG = 256;

function requireF32(op: string, ...ts: (Tensor | undefined)[]): void {
  for (const t of ts) if (t && t.dtype !== 'f32') throw new DTypeError(`${op}: expects f32 tensors, got ${t.dtype}`);
}

/** ε̂ = u + g·(c − u) for eps = [u; c] ([2B, ...]: the unconditional half first). Returns [B, ...]. */
export function cfgCombine(eps: Tensor, g: number): Tensor {
  requireF32('cfgCombine', eps);
  if (eps.rank < 1 || eps.shape[0] % 2 !== 0) throw new ShapeError(`cfgCombine: eps [${eps.shape}] must be [2B, ...] (unconditional half first)`);
  const out = Tensor.empty([eps.shape[0] / 2, ...eps.shape.slice(1)]);
  const n = out.size;
  const params = P.of({ n, per: Math.max(1, n / Math.max(1, out.shape[0])), g });
  const k = (entry: string) => ({ name: `guidance.${entry}`, code, entry, constants: { WG } });
  if (n) gpu().dispatch({ kernel: k('cfg'), buffers: [eps.buffer, out.buffer], params, workgroups: Math.ceil(n / WG) });
  return record('cfgCombine', [eps], out, [], (dy) => [() => {
    const d = Tensor.empty(eps.shape);
    if (n) gpu().dispatch({ kernel: k('cfg_bwd'), buffers: [dy.buffer, d.buffer], params, workgroups: Math.ceil(n / WG) });
    return d;
  }]);
}

/** Per-item DDIM coefficients: x̂0 = x0X·x + x0Out·ε̂, x_prev = meanX·x + meanOut·ε̂ + std·z. */
export interface DdimCoefficients { x0X: number; x0Out: number; meanX: number; meanOut: number; std: number }

/**
 * One guided DDIM update in one launch: ε̂ from eps ([2B, ...] with `guidanceScale`, the unconditional half
 * first; or [B, ...] without), then x̂0 and x_prev = μ + σ·z (z only with `noise`). For sampling: not
 * differentiable (throws when recording gradients for an input that requires one).
 */
export function ddimStepFused(eps: Tensor, x: Tensor, coefs: readonly DdimCoefficients[], opts: { guidanceScale?: number; noise?: Tensor } = {}): { x0: Tensor; prev: Tensor } {
  requireF32('ddimStepFused', eps, x, opts.noise);
  const guided = opts.guidanceScale !== undefined;
  const B = x.shape[0];
  if (x.rank < 1 || eps.shape.slice(1).join() !== x.shape.slice(1).join() || eps.shape[0] !== (guided ? 2 * B : B)) {
    throw new ShapeError(`ddimStepFused: eps [${eps.shape}] must be [${guided ? 2 * B : B}, ${x.shape.slice(1)}] for x [${x.shape}]${guided ? ' (guided: both halves)' : ''}`);
  }
  if (coefs.length !== B) throw new ShapeError(`ddimStepFused: ${coefs.length} coefficient sets for a batch of ${B}`);
  if (opts.noise && opts.noise.shape.join() !== x.shape.join()) throw new ShapeError(`ddimStepFused: noise [${opts.noise.shape}] must be x's shape [${x.shape}]`);
  if (isGradEnabled() && [eps, x, opts.noise].some((t) => t?.requiresGrad)) throw new LpoError('ddimStepFused: a sampling op with no gradient (run it under noGrad)');
  const coef = Tensor.fromArray(coefs.flatMap((c) => [c.x0X, c.x0Out, c.meanX, c.meanOut, c.std]), [B, 5]);
  const x0 = Tensor.empty(x.shape);
  const prev = Tensor.empty(x.shape);
  const n = x.size;
  if (n) {
    gpu().dispatch({
      kernel: { name: 'guidance.ddim_step', code, entry: 'ddim_step', constants: { WG, GUIDED: guided ? 1 : 0, NOISE: opts.noise ? 1 : 0 } },
      buffers: [eps.buffer, x.buffer, coef.buffer, (opts.noise ?? x).buffer, x0.buffer, prev.buffer],
      params: P.of({ n, per: n / B, g: opts.guidanceScale ?? 1 }),
      workgroups: Math.ceil(n / WG),
    });
  }
  coef.dispose();
  return { x0, prev };
}
