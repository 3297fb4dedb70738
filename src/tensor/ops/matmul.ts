// Matmul and linear: C = act(op(A)·op(B) + bias) with batch broadcasting, transposes as strides,
// a fused bias/activation epilogue, and backward rules on the tape. Which kernel runs a product is
// planned in src/tensor/plan/ (matmul.ts: variants, split-K, dispatches; matmul-tune.ts: the choice
// and autotuning).
import { ShapeError, ArgumentError, DTypeError } from '../../errors.js';
import { isGradEnabled, record } from '../../autograd/tape.js';
import { Tensor, numel, tidy } from '../tensor.js';
import { settings } from '../../settings.js';
import { launchMatmul, MATMUL_ACTIVATIONS, type MatmulActivation, type MatmulGeometry, type MatmulVariant } from '../plan/matmul.js';
import { chooseMatmulConfig } from '../plan/matmul-tune.js';
import { add, broadcastShapes, expandTo, unary } from './elementwise.js';
import { sumToShape } from './reduce.js';
import { reshape } from './layout.js';
import { routeMatmul } from './autocast.js';

export type { MatmulActivation, MatmulVariant };

export interface MatmulOptions {
  /** a is [..., K, M] and used transposed. */
  transA?: boolean;
  /** b is [..., N, K] and used transposed (nn.Linear's weight layout). */
  transB?: boolean;
  /** [N] (or [M] with biasRows), added before the activation. */
  bias?: Tensor;
  /** The bias is [M], one value per output row (a 1x1 conv written as W·Xᵀ), instead of [N]. */
  biasRows?: boolean;
  activation?: MatmulActivation;
  /** Of the output's shape: added after the activation, in the same launch (a skip connection). */
  residual?: Tensor;
  /** Forces a kernel variant (tests, bench). */
  variant?: MatmulVariant;
  /** With a forced gemm variant: split K into this many slices (1: none). Default: the heuristic. */
  splitK?: number;
  /** With a forced gemm variant: the k slice per barrier (8 or 16). */
  bk?: number;
}

function dims(t: Tensor, trans: boolean): [number, number] {
  const r = t.shape[t.rank - 2];
  const c = t.shape[t.rank - 1];
  return trans ? [c, r] : [r, c];
}

/**
 * act(op(a)·op(b) + bias). a: [..., M, K] ([..., K, M] with transA); b: [..., K, N] ([..., N, K] with
 * transB); leading batch dims broadcast (NumPy rules). Returns [...batch, M, N].
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  // f16 operands or autocast: the f16 kernels (src/tensor/ops/autocast.ts).
  const routed = routeMatmul(a, b, opts, matmul);
  if (routed) return routed;
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const act = opts.activation ?? 'none';
  const { bias, residual } = opts;
  const biasRows = !!opts.biasRows;
  const desc = () => `a [${a.shape}]${transA ? 'ᵀ' : ''} · b [${b.shape}]${transB ? 'ᵀ' : ''}${bias ? ` + bias [${bias.shape}]` : ''}${residual ? ` + residual [${residual.shape}]` : ''}`;
  for (const t of [a, b, bias, residual]) {
    if (!t) continue;
    if (t.dtype !== 'f32') throw new DTypeError(`matmul: expects f32 tensors, got ${t.dtype} in ${desc()} (cast first)`);
  }
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmul: both operands need rank ≥ 2, got ${desc()}`);
  if (!MATMUL_ACTIVATIONS.includes(act)) throw new ArgumentError(`matmul: unknown activation '${act}'`);
  const [M, K] = dims(a, transA);
  const [Kb, N] = dims(b, transB);
  if (K !== Kb) throw new ShapeError(`matmul: inner dimensions differ (${K} vs ${Kb}) in ${desc()}`);
  const biasLen = biasRows ? M : N;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== biasLen)) throw new ShapeError(`matmul: bias must be [${biasLen}], got ${desc()}`);
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const outBatch = broadcastShapes(aBatch, bBatch, 'matmul');
  const nb = numel(outBatch);
  const outShape = [...outBatch, M, N];
  if (residual && residual.shape.join() !== outShape.join()) throw new ShapeError(`matmul: residual must be the output's shape [${outShape}], got ${desc()}`);
  if (residual && !settings.fuse) {
    // The unfused baseline (LPO_FUSE=0): the product, then the add.
    return tidy(() => add(matmul(a, b, { ...opts, residual: undefined }), residual));
  }

  // Operands whose batch is neither full nor a single matrix are expanded (a differentiable copy).
  const fits = (bt: readonly number[]) => numel(bt) === nb || numel(bt) === 1;
  if (!fits(aBatch) || !fits(bBatch)) {
    const ea = fits(aBatch) ? a : expandTo(a, [...outBatch, ...a.shape.slice(-2)]);
    const eb = fits(bBatch) ? b : expandTo(b, [...outBatch, ...b.shape.slice(-2)]);
    const out = matmul(ea, eb, opts);
    if (ea !== a) ea.dispose();
    if (eb !== b) eb.dispose();
    return out;
  }

  const needGrad = isGradEnabled() && [a, b, bias, residual].some((t) => t?.requiresGrad);
  if (needGrad && act !== 'none') {
    // Unfused when recording: z = a·b + bias on the tape, then the elementwise activation (its backward).
    return tidy(() => {
      const y = unary(act, matmul(a, b, { ...opts, activation: 'none', residual: undefined }));
      return residual ? add(y, residual) : y;
    });
  }

  const out = Tensor.empty(outShape);
  if (out.size > 0) {
    const aFull = numel(aBatch) === nb && nb > 1;
    const bFull = numel(bBatch) === nb && nb > 1;
    // b one matrix and a row-major [.., M, K]: fold the batch into M (not with a per-row bias, indexed by m).
    const fold = !bFull && !transA && nb > 1 && !biasRows;
    const g: MatmulGeometry = {
      M: fold ? nb * M : M, N, K, batch: fold ? 1 : nb,
      sam: transA ? 1 : K, sak: transA ? M : 1,
      sbk: transB ? 1 : N, sbn: transB ? K : 1,
      aBs: aFull && !fold ? M * K : 0, bBs: bFull ? K * N : 0,
    };
    const cfg = chooseMatmulConfig(g, transA, transB, opts.variant ? { variant: opts.variant, splitK: opts.splitK, bk: opts.bk } : undefined);
    launchMatmul(cfg, g, { act, hasBias: !!bias, transA, transB, biasRows, hasResidual: !!residual }, { a: a.buffer, b: b.buffer, bias: bias?.buffer, c: out.buffer, residual: residual?.buffer });
  }

  const inputs = [a, b, ...(bias ? [bias] : []), ...(residual ? [residual] : [])];
  return record('matmul', inputs, out, [a, b], (dy, [sa, sb]) => {
    const v = opts.variant;
    const gradA = () => {
      const g = transA
        ? matmul(sb, dy, { transA: transB, transB: true, variant: v })
        : matmul(dy, sb, { transB: !transB, variant: v });
      return reduceTo(g, a.shape);
    };
    const gradB = () => {
      const foldable = numel(bBatch) === 1 && nb > 1 && !transA;
      if (foldable) {
        // Σ over the batch is part of the product: [nb·M, K]ᵀ·[nb·M, N].
        const a2 = sa.view([nb * M, K]);
        const d2 = dy.view([nb * M, N]);
        const g = transB ? matmul(d2, a2, { transA: true, variant: v }) : matmul(a2, d2, { transA: true, variant: v });
        a2.dispose();
        d2.dispose();
        const out = g.view(b.shape);
        g.dispose();
        return out;
      }
      const g = transB
        ? matmul(dy, sa, { transA: true, transB: transA, variant: v })
        : matmul(sa, dy, { transA: !transA, variant: v });
      return reduceTo(g, b.shape);
    };
    const gradBias = () => {
      if (biasRows) {
        const d3 = dy.view([-1, M, N]);
        const g = sumToShape(d3, [M, 1]);
        d3.dispose();
        const out = g.view([M]);
        g.dispose();
        return out;
      }
      const d2 = dy.view([-1, N]);
      const g = sumToShape(d2, [N]);
      d2.dispose();
      return g;
    };
    return [gradA, gradB, ...(bias ? [gradBias] : []), ...(residual ? [() => dy.retain()] : [])];
  });
}

function reduceTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.join() === shape.join()) return g;
  let r: Tensor;
  if (numel(g.shape) === numel(shape)) r = g.view(shape);
  else r = sumToShape(g, shape);
  g.dispose();
  return r;
}

/**
 * torch.nn.Linear: x [..., in] · weightᵀ + bias, weight [out, in], bias [out]. No copies: the weight
 * is read transposed in place, and leading dims of x fold into the row count.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor, opts: { activation?: MatmulActivation; variant?: MatmulVariant; residual?: Tensor } = {}): Tensor {
  if (weight.rank !== 2) throw new ShapeError(`linear: weight must be [out, in], got [${weight.shape}]`);
  if (x.rank < 1 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new ShapeError(`linear: x [${x.shape}] does not end in in_features ${weight.shape[1]} (weight [${weight.shape}])`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new ShapeError(`linear: bias must be [${weight.shape[0]}], got [${bias.shape}]`);
  }
  if (x.rank === 1) {
    if (opts.residual) throw new ShapeError('linear: a residual needs x of rank ≥ 2');
    const x2 = reshape(x, [1, x.shape[0]]);
    const y2 = matmul(x2, weight, { transB: true, bias, ...opts });
    const y = reshape(y2, [weight.shape[0]]);
    x2.dispose();
    y2.dispose();
    return y;
  }
  return matmul(x, weight, { transB: true, bias, ...opts });
}
