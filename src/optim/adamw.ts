// AdamW with torch.optim.AdamW semantics (decoupled weight decay, bias correction), one fused
// kernel per parameter buffer; global gradient norm and clipping on the GPU. See kernels/adamw.wgsl.
import { LpoError, ShapeError, DTypeError } from '../errors.js';
import { defineParams, type ParamValues } from '../gpu/params.js';
import { gpu } from '../gpu/runtime.js';
import { kernelModule } from '../gpu/wgsl.js';
import { Tensor, keep } from '../tensor/tensor.js';
import { zeros } from '../tensor/ops/elementwise.js';

const code = kernelModule('adamw');
const FIELDS = {
  n: 'u32', decay: 'f32', beta1: 'f32', beta2: 'f32', step_size: 'f32', bc2_sqrt: 'f32', eps: 'f32', slot: 'u32', max_norm: 'f32',
} as const;
const P = defineParams('adamw.wgsl', 'Params', FIELDS);

const WG = 256;
/** Invocations per buffer in the sum-of-squares pass. */
const NT = 256;

export interface AdamWOptions {
  /** Learning rate (default 1e-3, as torch). */
  lr?: number;
  betas?: [number, number];
  eps?: number;
  /** Decoupled weight decay (default 1e-2, as torch). */
  weightDecay?: number;
}

/** The params block with the fields an entry point reads set, the others 0. */
const uni = (n: number, fields: Partial<ParamValues<typeof FIELDS>>) =>
  P.of({ n, decay: 0, beta1: 0, beta2: 0, step_size: 0, bc2_sqrt: 0, eps: 0, slot: 0, max_norm: 0, ...fields });

function checkF32(op: string, t: Tensor): void {
  if (t.dtype !== 'f32') throw new DTypeError(`${op}: parameters and gradients must be f32, got ${t.dtype} [${t.shape}]`);
}

export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** Steps taken so far (torch keeps one per parameter; all ours step together). */
  private readonly steps = new Map<Tensor, number>();
  private readonly state = new Map<Tensor, { m: Tensor; v: Tensor }>();

  constructor(readonly params: Tensor[], opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 1e-3;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 1e-2;
    if (!(this.lr >= 0)) throw new LpoError(`AdamW: invalid lr ${this.lr}`);
    for (const b of this.betas) if (!(b >= 0 && b < 1)) throw new LpoError(`AdamW: invalid beta ${b}`);
    for (const p of params) checkF32('AdamW', p);
  }

  /** One update of every parameter that has a gradient (those without are skipped, as in torch). */
  step(): void {
    const [b1, b2] = this.betas;
    for (const p of this.params) {
      const g = p.grad;
      if (!g) continue;
      checkF32('AdamW.step', g);
      if (g.size !== p.size) throw new ShapeError(`AdamW.step: grad [${g.shape}] does not match parameter [${p.shape}]`);
      let st = this.state.get(p);
      if (!st) {
        st = { m: keep(zeros(p.shape)), v: keep(zeros(p.shape)) };
        this.state.set(p, st);
      }
      const t = (this.steps.get(p) ?? 0) + 1;
      this.steps.set(p, t);
      if (p.size === 0) continue;
      const bc1 = 1 - b1 ** t;
      const bc2 = 1 - b2 ** t;
      gpu().dispatch({
        kernel: { name: 'adamw.step', code, entry: 'adamw_step', constants: { WG } },
        buffers: [p.buffer, g.buffer, st.m.buffer, st.v.buffer],
        params: uni(p.size, { decay: 1 - this.lr * this.weightDecay, beta1: b1, beta2: b2, step_size: this.lr / bc1, bc2_sqrt: Math.sqrt(bc2), eps: this.eps }),
        workgroups: Math.ceil(p.size / WG),
      });
    }
  }

  /** Frees the gradients of all parameters. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** First and second moments of a parameter (undefined before its first step). */
  moments(p: Tensor): { m: Tensor; v: Tensor } | undefined {
    return this.state.get(p);
  }

  /** Steps a parameter has taken (0 before its first): with moments(), what a checkpoint saves. */
  stepCount(p: Tensor): number {
    return this.steps.get(p) ?? 0;
  }

  /** Restores a parameter's state from a checkpoint: its step count and both moments (host values). */
  setState(p: Tensor, step: number, m: ArrayLike<number>, v: ArrayLike<number>): void {
    if (!this.params.includes(p)) throw new LpoError('AdamW.setState: not a parameter of this optimizer');
    if (!(Number.isInteger(step) && step >= 0)) throw new LpoError(`AdamW.setState: step must be a non-negative integer, got ${step}`);
    if (m.length !== p.size || v.length !== p.size) throw new ShapeError(`AdamW.setState: moments of ${m.length}/${v.length} values for a parameter of ${p.size}`);
    let st = this.state.get(p);
    if (!st) {
      st = { m: keep(zeros(p.shape)), v: keep(zeros(p.shape)) };
      this.state.set(p, st);
    }
    st.m.write(m);
    st.v.write(v);
    if (step === 0) this.steps.delete(p);
    else this.steps.set(p, step);
  }

  /** Frees the optimizer state. */
  dispose(): void {
    for (const { m, v } of this.state.values()) {
      m.dispose();
      v.dispose();
    }
    this.state.clear();
    this.steps.clear();
  }
}

/** The global L2 norm of the gradients of `params` (those with one), as a scalar tensor. */
export function gradNorm(params: readonly Tensor[]): Tensor {
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null && g.size > 0);
  grads.forEach((g) => checkF32('gradNorm', g));
  const norm = Tensor.empty([]);
  const partials = Tensor.empty([Math.max(1, grads.length) * NT]);
  if (grads.length === 0) {
    const z = zeros([NT]);
    gpu().copy(z.buffer, 0, partials.buffer, 0, NT * 4);
    z.dispose();
  }
  grads.forEach((g, slot) => {
    gpu().dispatch({
      kernel: { name: 'adamw.sumsq', code, entry: 'sumsq', constants: { WG, NT } },
      buffers: [g.buffer, partials.buffer],
      params: uni(g.size, { slot }),
      workgroups: Math.ceil(NT / WG),
    });
  });
  gpu().dispatch({
    kernel: { name: 'adamw.finish_norm', code, entry: 'finish_norm' },
    buffers: [partials.buffer, norm.buffer],
    params: uni(partials.size, {}),
    workgroups: 1,
  });
  partials.dispose();
  return norm;
}

/**
 * Scales the gradients in place by min(maxNorm / (norm + 1e-6), 1), as
 * torch.nn.utils.clip_grad_norm_; the norm stays on the GPU. Returns the norm before clipping.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): Tensor {
  const norm = gradNorm(params);
  // Leaves can share one gradient buffer (add(p1, p2) hands both the same dy): scale each buffer once.
  const scaled = new Set<GPUBuffer>();
  for (const p of params) {
    const g = p.grad;
    if (!g || g.size === 0 || scaled.has(g.buffer)) continue;
    scaled.add(g.buffer);
    gpu().dispatch({
      kernel: { name: 'adamw.clip', code, entry: 'clip', constants: { WG } },
      buffers: [norm.buffer, g.buffer],
      params: uni(g.size, { max_norm: maxNorm }),
      workgroups: Math.ceil(g.size / WG),
    });
  }
  return norm;
}
