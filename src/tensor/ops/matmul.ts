// Matmul and linear: C = act(op(A)·op(B) + bias) with batch broadcasting, transposes as strides,
// a fused bias/activation epilogue, and backward rules on the tape.
//
// Variants (kernels/matmul.wgsl): 'naive' (baseline), 'blocked' (no barriers, subgroupBroadcast of A
// rows; falls back to 'strip' without subgroups), 'strip' (no barriers, no subgroups) and 'tiled'
// (workgroup-memory tiles for GPUs). The default is 'blocked' on software adapters and, on GPUs,
// 'tiled' for products large enough to fill the device, else 'strip' (see autoVariant);
// LPO_MATMUL_VARIANT=naive|blocked|strip|tiled overrides it, and `opts.variant` overrides both.
import source from '../../../kernels/matmul.wgsl';
import { ShapeError } from '../../gpu/errors.js';
import { gpu, type Gpu } from '../../gpu/runtime.js';
import { isGradEnabled, record } from '../../autograd/tape.js';
import { Tensor, numel } from '../tensor.js';
import { broadcastShapes, expandTo, unary, type UnaryOp } from './elementwise.js';
import { sumToShape } from './reduce.js';
import { reshape } from './layout.js';

export type MatmulVariant = 'naive' | 'blocked' | 'strip' | 'tiled';
export type MatmulActivation = 'none' | 'relu' | 'gelu' | 'geluTanh' | 'silu';
const ACT: Record<MatmulActivation, number> = { none: 0, relu: 1, gelu: 2, geluTanh: 3, silu: 4 };
const VARIANTS: readonly MatmulVariant[] = ['naive', 'blocked', 'strip', 'tiled'];

export interface MatmulOptions {
  /** a is [..., K, M] and used transposed. */
  transA?: boolean;
  /** b is [..., N, K] and used transposed (nn.Linear's weight layout). */
  transB?: boolean;
  /** [N], added before the activation. */
  bias?: Tensor;
  activation?: MatmulActivation;
  /** Forces a kernel variant (tests, bench). */
  variant?: MatmulVariant;
}

const [COMMON, SUBGROUP_SECTION] = source.split('// ---- subgroups ----');
const SG_SOURCE = `${COMMON}\n${SUBGROUP_SECTION}`;

/** The variant used when none is forced: LPO_MATMUL_VARIANT, else by adapter kind. */
export function defaultMatmulVariant(): MatmulVariant {
  const env = process.env.LPO_MATMUL_VARIANT;
  if (env) {
    if (!(VARIANTS as readonly string[]).includes(env)) throw new ShapeError(`LPO_MATMUL_VARIANT=${env}: expected one of ${VARIANTS.join('|')}`);
    return env as MatmulVariant;
  }
  return gpu().isSoftware ? 'blocked' : 'tiled';
}

/** Whether the subgroupBroadcast kernel can run here (subgroups with ≥ 8 lanes). */
export function hasBlockedKernel(g: Gpu = gpu()): boolean {
  return g.acquired.hasSubgroups && g.summary.subgroupMinSize >= 8;
}

/** The variant that actually runs for a requested one ('blocked' → 'strip' without subgroups). */
export function resolveMatmulVariant(v: MatmulVariant = defaultMatmulVariant()): MatmulVariant {
  return v === 'blocked' && !hasBlockedKernel() ? 'strip' : v;
}

const dummies = new WeakMap<Gpu, GPUBuffer>();
function dummyBuffer(): GPUBuffer {
  const g = gpu();
  let d = dummies.get(g);
  if (!d) {
    d = g.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE, label: 'matmul.nobias' });
    dummies.set(g, d);
  }
  return d;
}

interface Geometry {
  M: number; N: number; K: number; batch: number;
  sam: number; sak: number; sbk: number; sbn: number;
  aBs: number; bBs: number;
}

const WG = 64;
/** Tiled's k slice (LPO_MATMUL_BK overrides, for tuning). */
const TILED_BK = Number(process.env.LPO_MATMUL_BK ?? 8);

/** 128×128 tiles of the product (the tiled kernel's big tile). */
const bigTiles = (g: Geometry) => Math.ceil(g.M / 128) * Math.ceil(g.N / 128) * g.batch;

/**
 * The default variant for a product: LPO_MATMUL_VARIANT if set; on software adapters 'blocked';
 * on GPUs 'tiled' when its 128×128 tiles fill the device (≥ 128 of them, ~one per SM on H100/H200),
 * else 'strip' (measured on an H200: strip beats 64×64 tiles below that; bench/results/nvidia-h200.json).
 */
function autoVariant(g: Geometry): MatmulVariant {
  if (process.env.LPO_MATMUL_VARIANT || gpu().isSoftware) return defaultMatmulVariant();
  return bigTiles(g) >= 128 ? 'tiled' : 'strip';
}

function launch(variant: MatmulVariant, a: Tensor, b: Tensor, bias: Tensor | undefined, c: Tensor, g: Geometry,
  act: MatmulActivation, transA: boolean, transB: boolean): void {
  const constants: Record<string, number> = { ACT: ACT[act], HAS_BIAS: bias ? 1 : 0 };
  const buffers = [a.buffer, b.buffer, bias ? bias.buffer : dummyBuffer(), c.buffer];
  const base = [g.M, g.N, g.K, g.batch, g.sam, g.sak, g.sbk, g.sbn, g.aBs, g.bBs];
  const v = resolveMatmulVariant(variant);
  const name = `matmul.${v}`;
  switch (v) {
    case 'naive':
      gpu().dispatch({
        kernel: { name, code: COMMON, entry: 'naive', constants: { ...constants, WG } },
        buffers, params: [...base, 0, 0], workgroups: Math.ceil((g.M * g.N * g.batch) / WG),
      });
      return;
    case 'tiled': {
      // 128×128 tiles when there are enough of them to fill the GPU, else 64×64.
      const big = bigTiles(g) >= 128;
      const t = big ? 16 : 8;
      const bm = 8 * t;
      gpu().dispatch({
        kernel: { name, code: COMMON, entry: 'tiled', constants: { ...constants, TX: t, TY: t, BK: TILED_BK, TRANS_A: transA ? 1 : 0, TRANS_B: transB ? 1 : 0 } },
        buffers, params: [...base, 0, 0], workgroups: [Math.ceil(g.N / bm), Math.ceil(g.M / bm), g.batch],
      });
      return;
    }
    default: {
      const gridN = Math.ceil(g.N / WG);
      const gridM = Math.ceil(g.M / 8);
      const sg = v === 'blocked';
      gpu().dispatch({
        kernel: { name, code: sg ? SG_SOURCE : COMMON, entry: v, constants: { ...constants, WG }, enables: sg ? ['subgroups'] : undefined },
        buffers, params: [...base, gridM, gridN], workgroups: gridN * gridM * g.batch,
      });
    }
  }
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
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const act = opts.activation ?? 'none';
  const bias = opts.bias;
  const desc = () => `a [${a.shape}]${transA ? 'ᵀ' : ''} · b [${b.shape}]${transB ? 'ᵀ' : ''}${bias ? ` + bias [${bias.shape}]` : ''}`;
  for (const t of bias ? [a, b, bias] : [a, b]) {
    if (t.dtype !== 'f32') throw new ShapeError(`matmul: expects f32 tensors, got ${t.dtype} in ${desc()} (cast first)`);
  }
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmul: both operands need rank ≥ 2, got ${desc()}`);
  if (!(act in ACT)) throw new ShapeError(`matmul: unknown activation '${act}'`);
  const [M, K] = dims(a, transA);
  const [Kb, N] = dims(b, transB);
  if (K !== Kb) throw new ShapeError(`matmul: inner dimensions differ (${K} vs ${Kb}) in ${desc()}`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== N)) throw new ShapeError(`matmul: bias must be [${N}], got ${desc()}`);
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const outBatch = broadcastShapes(aBatch, bBatch, 'matmul');
  const nb = numel(outBatch);

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

  const needGrad = isGradEnabled() && [a, b, bias].some((t) => t?.requiresGrad);
  if (needGrad && act !== 'none') {
    // Unfused when recording: z = a·b + bias on the tape, then the elementwise activation (its backward).
    const z = matmul(a, b, { ...opts, activation: 'none' });
    const y = unary(act as UnaryOp, z);
    z.dispose();
    return y;
  }

  const out = Tensor.empty([...outBatch, M, N]);
  if (out.size > 0) {
    const aFull = numel(aBatch) === nb && nb > 1;
    const bFull = numel(bBatch) === nb && nb > 1;
    // b one matrix and a row-major [.., M, K]: fold the batch into M.
    const fold = !bFull && !transA && nb > 1;
    const g: Geometry = {
      M: fold ? nb * M : M, N, K, batch: fold ? 1 : nb,
      sam: transA ? 1 : K, sak: transA ? M : 1,
      sbk: transB ? 1 : N, sbn: transB ? K : 1,
      aBs: aFull && !fold ? M * K : 0, bBs: bFull ? K * N : 0,
    };
    launch(opts.variant ?? autoVariant(g), a, b, bias, out, g, act, transA, transB);
  }

  const inputs = bias ? [a, b, bias] : [a, b];
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
      const d2 = dy.view([-1, N]);
      const g = sumToShape(d2, [N]);
      d2.dispose();
      return g;
    };
    return bias ? [gradA, gradB, gradBias] : [gradA, gradB];
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
export function linear(x: Tensor, weight: Tensor, bias?: Tensor, opts: { activation?: MatmulActivation; variant?: MatmulVariant } = {}): Tensor {
  if (weight.rank !== 2) throw new ShapeError(`linear: weight must be [out, in], got [${weight.shape}]`);
  if (x.rank < 1 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new ShapeError(`linear: x [${x.shape}] does not end in in_features ${weight.shape[1]} (weight [${weight.shape}])`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new ShapeError(`linear: bias must be [${weight.shape[0]}], got [${bias.shape}]`);
  }
  if (x.rank === 1) {
    const x2 = reshape(x, [1, x.shape[0]]);
    const y2 = matmul(x2, weight, { transB: true, bias, ...opts });
    const y = reshape(y2, [weight.shape[0]]);
    x2.dispose();
    y2.dispose();
    return y;
  }
  return matmul(x, weight, { transB: true, bias, ...opts });
}
