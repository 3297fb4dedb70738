// LoRA linear: x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ with W frozen (no dW ever). See kernels/lora.wgsl.
import family from '../../../kernels/lora.wgsl';
import { withCommon } from '../../gpu/wgsl.js';
import { ShapeError, DTypeError } from '../../errors.js';
import { gpu, f32, type Dispatch } from '../../gpu/runtime.js';
import { isGradEnabled, record } from '../../autograd/tape.js';
import { Tensor, tidy } from '../tensor.js';
import { sum } from './reduce.js';
import { matmul } from './matmul.js';
import { add, affine } from './elementwise.js';

const source = withCommon(family);

const ROWS_WG = 64;
const TILE_M = 64;
const TILE_N = 128;
const TILE_BK = 16;
/** Largest rank the tiled forward holds in workgroup memory (larger ranks use the rows variant). */
export const LORA_TILED_MAX_RANK = 64;

export type LoraVariant = 'rows' | 'tiled';

/**
 * Forward variant: 'tiled' (workgroup tiles through workgroup memory, GPUs) or 'rows' (no barriers,
 * lavapipe); 'auto' picks on gpu().isSoftware, and ranks over 64 always take 'rows'. Both are one launch.
 */
export const loraConfig: { variant: 'auto' | LoraVariant } = { variant: 'auto' };

/** The forward variant used for rank R (a forced 'tiled' still falls back to 'rows' past rank 64). */
export function resolveLoraVariant(R: number): LoraVariant {
  const v = loraConfig.variant === 'auto' ? (gpu().isSoftware ? 'rows' : 'tiled') : loraConfig.variant;
  return v === 'tiled' && R <= LORA_TILED_MAX_RANK ? 'tiled' : 'rows';
}

/** rows: columns per invocation (a multiple of 8) and the number of column spans. */
function rowsSpan(M: number, N: number, R: number): { span: number; spans: number; rowBlocks: number } {
  const rowBlocks = Math.ceil(M / ROWS_WG);
  // Enough workgroups to fill the machine, but each span ≥ 4·R columns so recomputing u per span
  // costs at most ~25% over the main product.
  const target = gpu().isSoftware ? 8 : 1024;
  const maxSpans = Math.max(1, Math.floor(N / Math.max(8, 4 * R)));
  const want = Math.max(1, Math.min(maxSpans, Math.ceil(target / rowBlocks)));
  const span = Math.ceil(Math.ceil(N / want) / 8) * 8;
  return { span, spans: Math.ceil(N / span), rowBlocks };
}

/**
 * y = x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ for x [..., in], W [out, in] (frozen), b [out] (optional),
 * A [r, in], B [out, r]; scale is usually α/r. One launch forward. Backward gives dx, dA, dB and db;
 * W gets no gradient even when it requires one.
 */
export function loraLinear(x: Tensor, W: Tensor, b: Tensor | null | undefined, A: Tensor, B: Tensor, scale: number): Tensor {
  for (const [n, t] of [['x', x], ['W', W], ['A', A], ['B', B], ['b', b]] as const) {
    if (t && t.dtype !== 'f32') throw new DTypeError(`loraLinear: ${n} must be f32, got ${t.dtype}`);
  }
  if (x.rank < 1 || W.rank !== 2 || A.rank !== 2 || B.rank !== 2) {
    throw new ShapeError(`loraLinear: need x [..., in], W [out, in], A [r, in], B [out, r]; got x [${x.shape}], W [${W.shape}], A [${A.shape}], B [${B.shape}]`);
  }
  const K = x.shape[x.rank - 1];
  const [N, Kw] = W.shape;
  const [R, Ka] = A.shape;
  if (Kw !== K || Ka !== K || B.shape[0] !== N || B.shape[1] !== R || (b && (b.rank !== 1 || b.shape[0] !== N))) {
    throw new ShapeError(
      `loraLinear: x [${x.shape}], W [${W.shape}], b [${b?.shape ?? ''}], A [${A.shape}], B [${B.shape}] ` +
        `do not fit x [..., in], W [out, in], b [out], A [r, in], B [out, r]`,
    );
  }
  const M = x.size / Math.max(K, 1);

  // The forward keeps u = x·Aᵀ for dB when B will get a gradient.
  const keepU = isGradEnabled() && B.requiresGrad && M * R > 0;
  const u: Tensor | null = keepU ? Tensor.empty([M, R]) : null;
  const y = Tensor.empty([...x.shape.slice(0, -1), N]);
  if (M * N > 0) {
    // Without u a 1-element stand-in (never written: write_u = 0) keeps the binding distinct from y.
    const dummy = u ? null : Tensor.empty([1]);
    const uBuf = (u ?? dummy!).buffer;
    const bBuf = (b ?? W).buffer;
    const buffers = [x.buffer, W.buffer, bBuf, A.buffer, B.buffer, y.buffer];
    let d: Dispatch;
    if (resolveLoraVariant(R) === 'tiled') {
      const RU = Math.max(4, Math.ceil(R / 4) * 4);
      const SH = Math.max(TILE_BK * (TILE_M + TILE_N + RU), TILE_M * RU) / 4;
      d = {
        kernel: { name: 'lora.fwd_tiled', code: source, entry: 'lora_fwd_tiled', constants: { HAS_BIAS: b ? 1 : 0, RU, BK: TILE_BK, SH } },
        buffers: [...buffers, uBuf],
        params: [M, N, K, R, f32(scale), keepU ? 1 : 0, 0, 0],
        workgroups: [Math.ceil(N / TILE_N), Math.ceil(M / TILE_M)],
      };
    } else {
      const { span, spans, rowBlocks } = rowsSpan(M, N, R);
      const RQ = Math.max(1, Math.ceil(Math.min(R, 64) / 4));
      d = {
        kernel: { name: 'lora.fwd_rows', code: source, entry: 'lora_fwd_rows', constants: { WG: ROWS_WG, HAS_BIAS: b ? 1 : 0, RQ } },
        buffers: [...buffers, uBuf],
        params: [M, N, K, R, f32(scale), keepU ? 1 : 0, span, rowBlocks],
        workgroups: rowBlocks * spans,
      };
    }
    gpu().dispatch(d);
    dummy?.dispose();
  }

  const inputs = b ? [x, W, b, A, B] : [x, W, A, B];
  // Backward on top of matmul, so it runs on the tuned GEMMs of either target (the products are dense:
  // dy·W alone is as large as the forward). g = scale·dy·B feeds dx and dA: made once, freed by the last.
  const out = record('loraLinear', inputs, y, u ? [x, W, A, B, u] : [x, W, A, B], (dy, [sx, sW, sA, sB, su]) => {
    const needA = A.requiresGrad;
    let g: Tensor | null = null;
    const getG = () => (g ??= tidy(() => affine(matmul(dy.view([M, N]), sB), scale, 0)));
    const dxThunk = () => {
      const gg = getG();
      const dx = tidy(() => add(matmul(dy.view([M, N]), sW), matmul(gg, sA)).view(x.shape));
      if (!needA) gg.dispose();
      return dx;
    };
    const dAThunk = () => {
      const gg = getG();
      const dA = tidy(() => matmul(gg, sx.view([M, K]), { transA: true }));
      gg.dispose();
      return dA;
    };
    // u from the forward; recomputed only if B was not trainable then.
    const dBThunk = () => tidy(() => affine(matmul(dy.view([M, N]), su ?? matmul(sx.view([M, K]), sA, { transB: true }), { transA: true }), scale, 0));
    const dbThunk = () => tidy(() => sum(dy.view([M, N]), 0));
    return b ? [dxThunk, null, dbThunk, dAThunk, dBThunk] : [dxThunk, null, dAThunk, dBThunk];
  });
  u?.dispose();
  return out;
}
