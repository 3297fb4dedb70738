// Mixed-precision matmul: C = act(op(A)·op(B) + bias) with f16 operands and f32 accumulation, on the
// fragment kernels (kernels/matmul_f16.wgsl: tensor cores where the device has subgroup matrices,
// plain WGSL elsewhere). A and B may be stored as f16 or f32 (f32 values are rounded to f16 when
// staged, as torch.autocast casts them); C is f16 or f32 (default: A's dtype). Gradients are f32
// (the tape accumulates and the optimizers step in f32); they are computed by the same kernels.
// matmul() routes here when an operand is f16 or autocast is on (src/tensor/ops/autocast.ts).
import { ArgumentError, DTypeError, ShapeError } from '../../errors.js';
import { isGradEnabled, record } from '../../autograd/tape.js';
import { Tensor, numel, type DType } from '../tensor.js';
import { MATMUL_ACTIVATIONS, type MatmulActivation } from '../plan/matmul.js';
import { fragKernelsAvailable, type StoreType } from '../plan/frag.js';
import { launchMm16, type Mm16Flags, type Mm16Geometry, type Mm16Types } from '../plan/mm16.js';
import { chooseMm16Tile } from '../plan/mm16-tune.js';
import { unary } from './elementwise.js';
import { sumToShape } from './reduce.js';
import { cast } from './cast.js';

export interface MatmulF16Options {
  transA?: boolean;
  transB?: boolean;
  /** [N] (f32, or f16 which is widened first). */
  bias?: Tensor;
  activation?: MatmulActivation;
  /** Scales the product before the bias (default 1). */
  alpha?: number;
  /** Output dtype (default: a's dtype). */
  out?: 'f16' | 'f32';
  /** Forces a fragment tile id (tests, bench; src/tensor/plan/frag.ts). */
  tile?: string;
  /**
   * Operand precision in the kernel: 'f16' (default) or 'f32' (the same kernels staging f32, plain
   * WGSL): exact enough for gradcheck of this op's backward, and the f32 register-tiled variant.
   */
  staging?: 'f16' | 'f32';
}

/** The storage type of a float tensor (i32 refused). */
export function storeType(t: Tensor, op: string): StoreType {
  if (t.dtype === 'i32') throw new DTypeError(`${op}: expects f16 or f32 tensors, got i32 [${t.shape}]`);
  return t.dtype;
}

/** Throws when this adapter cannot run the fragment kernels with these types (subgroups, and shader-f16 for any f16). */
export function requireFragKernels(op: string, types: readonly StoreType[]): void {
  const ft = types.includes('f16') ? 'f16' : 'f32';
  if (!fragKernelsAvailable(ft)) throw new DTypeError(`${op}: needs an adapter with 'subgroups'${ft === 'f16' ? " and 'shader-f16'" : ''}`);
}

function dims(t: Tensor, trans: boolean): [number, number] {
  const r = t.shape[t.rank - 2];
  const c = t.shape[t.rank - 1];
  return trans ? [c, r] : [r, c];
}

/** A widened copy of an f16 bias (differentiable through the cast), or the bias itself. */
function f32Bias(bias: Tensor | undefined): Tensor | undefined {
  return bias && bias.dtype === 'f16' ? cast(bias, 'f32') : bias;
}

/**
 * act(alpha·op(a)·op(b) + bias) with f16 operands and f32 accumulation. a: [..., M, K] ([..., K, M]
 * with transA); b: [..., K, N] ([..., N, K] with transB); batch dims equal, or one side a single
 * matrix (no other broadcasting). Returns [...batch, M, N] in opts.out (default a's dtype).
 */
export function matmulF16(a: Tensor, b: Tensor, opts: MatmulF16Options = {}): Tensor {
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const act = opts.activation ?? 'none';
  const desc = () => `a [${a.shape}]${transA ? 'ᵀ' : ''} · b [${b.shape}]${transB ? 'ᵀ' : ''}`;
  const TA = storeType(a, 'matmulF16');
  const TB = storeType(b, 'matmulF16');
  const out: DType = opts.out ?? TA;
  const FT = opts.staging ?? 'f16';
  requireFragKernels('matmulF16', [TA, TB, out, FT]);
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmulF16: both operands need rank ≥ 2, got ${desc()}`);
  if (!MATMUL_ACTIVATIONS.includes(act)) throw new ArgumentError(`matmulF16: unknown activation '${act}'`);
  const [M, K] = dims(a, transA);
  const [Kb, N] = dims(b, transB);
  if (K !== Kb) throw new ShapeError(`matmulF16: inner dimensions differ (${K} vs ${Kb}) in ${desc()}`);
  const bias0 = opts.bias;
  if (bias0 && (bias0.rank !== 1 || bias0.shape[0] !== N)) throw new ShapeError(`matmulF16: bias must be [${N}], got [${bias0.shape}] for ${desc()}`);
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const na = numel(aBatch);
  const nb = numel(bBatch);
  if (na !== nb && na !== 1 && nb !== 1) throw new ShapeError(`matmulF16: batch dims must be equal or one side a single matrix, got ${desc()}`);
  const outBatch = na >= nb ? aBatch : bBatch;
  const nbat = Math.max(na, nb);

  const needGrad = isGradEnabled() && [a, b, bias0].some((t) => t?.requiresGrad);
  if (needGrad && act !== 'none') {
    // Recorded: the product, then the elementwise activation (whose backward is the f32 unary op).
    const z = matmulF16(a, b, { ...opts, activation: 'none', out: 'f32' });
    const y = unary(act, z);
    z.dispose();
    return y;
  }
  const bias = f32Bias(bias0);

  const y = Tensor.empty([...outBatch, M, N], out);
  if (y.size > 0) {
    // b one matrix and a row-major [.., M, K]: fold the batch into M.
    const fold = nb === 1 && !transA && na > 1;
    const g: Mm16Geometry = {
      M: fold ? na * M : M, N, K, batch: fold ? 1 : nbat,
      sam: transA ? 1 : K, sak: transA ? M : 1, sbk: transB ? 1 : N, sbn: transB ? K : 1,
      aBs: na > 1 && !fold ? M * K : 0, bBs: nb > 1 ? K * N : 0, K2: 0, sb2k: 0, sb2n: 0,
    };
    const f: Mm16Flags = { act, hasBias: !!bias, transA, transB, alpha: opts.alpha ?? 1 };
    const types: Mm16Types = { TA, TB, TC: out, FT };
    launchMm16(chooseMm16Tile(g, f, types, opts.tile), g, f, types, { a: a.buffer, b: b.buffer, c: y.buffer, bias: bias?.buffer });
  }
  if (bias && bias !== bias0) bias.dispose();

  const alpha = opts.alpha ?? 1;
  const inputs = bias0 ? [a, b, bias0] : [a, b];
  return record('matmulF16', inputs, y, [a, b], (dy, [sa, sb]) => {
    const o = { out: 'f32' as const, alpha, staging: FT };
    const gradA = () => {
      const g = transA ? matmulF16(sb, dy, { ...o, transA: transB, transB: true }) : matmulF16(dy, sb, { ...o, transB: !transB });
      return reduceTo(g, a.shape);
    };
    const gradB = () => {
      if (nb === 1 && nbat > 1 && !transA) {
        // Σ over the batch is part of the product: [nb·M, K]ᵀ·[nb·M, N].
        const a2 = sa.view([nbat * M, K]);
        const d2 = dy.view([nbat * M, N]);
        const g = transB ? matmulF16(d2, a2, { ...o, transA: true }) : matmulF16(a2, d2, { ...o, transA: true });
        a2.dispose();
        d2.dispose();
        return reduceTo(g, b.shape);
      }
      const g = transB ? matmulF16(dy, sa, { ...o, transA: true, transB: transA }) : matmulF16(sa, dy, { ...o, transA: !transA });
      return reduceTo(g, b.shape);
    };
    const gradBias = () => {
      const d32 = dy.dtype === 'f32' ? dy.retain() : cast(dy, 'f32');
      const d2 = d32.view([-1, N]);
      d32.dispose();
      const g = sumToShape(d2, [N]);
      d2.dispose();
      return g;
    };
    return bias0 ? [gradA, gradB, gradBias] : [gradA, gradB];
  });
}

/** g viewed or summed (over broadcast batch entries) to `shape`. */
function reduceTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.join() === shape.join()) return g;
  const r = numel(g.shape) === numel(shape) ? g.view(shape) : sumToShape(g, shape);
  g.dispose();
  return r;
}
