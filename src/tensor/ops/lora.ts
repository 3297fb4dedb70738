// LoRA linear: x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ. See kernels/lora.wgsl. W is usually frozen; when it
// requires a gradient it gets dW = dyᵀ·x like any linear weight.
import { loraShapes } from './lora_shapes.js';
import { DTypeError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu, type Dispatch } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { isGradEnabled, record } from '../../autograd/tape.js';
import { Tensor, tidy } from '../tensor.js';
import { resolveLoraVariant, LORA_TILED_MAX_RANK, type LoraVariant } from '../plan/variants.js';
import { sum } from './reduce.js';
import { matmul } from './matmul.js';
import { add, affine } from './elementwise.js';
import { routeLora } from './autocast.js';

export { resolveLoraVariant, LORA_TILED_MAX_RANK, type LoraVariant };
const code = kernelModule('lora');
const P = defineParams('lora.wgsl', 'Params', {
  M: 'u32', N: 'u32', K: 'u32', R: 'u32', scale: 'f32', write_u: 'u32', span: 'u32', row_blocks: 'u32',
});

const ROWS_WG = 64;
const TILE_M = 64;
const TILE_N = 128;
const TILE_BK = 16;
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
 * y = x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ for x [..., in], W [out, in], b [out] (optional), A [r, in],
 * B [out, r]; scale is usually α/r. One launch forward (variant: src/tensor/plan/variants.ts). Backward
 * gives dx, dA, dB and db, and dW = dyᵀ·x when W requires a gradient (usually it is frozen).
 */
export function loraLinear(x: Tensor, W: Tensor, b: Tensor | null | undefined, A: Tensor, B: Tensor, scale: number): Tensor {
  // f16 operands or autocast: the fragment kernels (src/tensor/ops/autocast.ts).
  const routed = routeLora(x, W, b, A, B, scale, loraLinear);
  if (routed) return routed;
  for (const [n, t] of [['x', x], ['W', W], ['A', A], ['B', B], ['b', b]] as const) {
    if (t && t.dtype !== 'f32') throw new DTypeError(`loraLinear: ${n} must be f32, got ${t.dtype}`);
  }
  const { M, K, N, R } = loraShapes(x, W, b, A, B);

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
        kernel: { name: 'lora.fwd_tiled', code, entry: 'lora_fwd_tiled', constants: { HAS_BIAS: b ? 1 : 0, RU, BK: TILE_BK, SH } },
        buffers: [...buffers, uBuf],
        params: P.of({ M, N, K, R, scale, write_u: keepU ? 1 : 0, span: 0, row_blocks: 0 }),
        workgroups: [Math.ceil(N / TILE_N), Math.ceil(M / TILE_M)],
      };
    } else {
      const { span, spans, rowBlocks } = rowsSpan(M, N, R);
      const RQ = Math.max(1, Math.ceil(Math.min(R, 64) / 4));
      d = {
        kernel: { name: 'lora.fwd_rows', code, entry: 'lora_fwd_rows', constants: { WG: ROWS_WG, HAS_BIAS: b ? 1 : 0, RQ } },
        buffers: [...buffers, uBuf],
        params: P.of({ M, N, K, R, scale, write_u: keepU ? 1 : 0, span, row_blocks: rowBlocks }),
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
    const getG = () => (g ??= tidy(() => affine(matmul(dy.view([M, N]), sB), { scale })));
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
    const dBThunk = () => tidy(() => affine(matmul(dy.view([M, N]), su ?? matmul(sx.view([M, K]), sA, { transB: true }), { transA: true }), { scale }));
    const dbThunk = () => tidy(() => sum(dy.view([M, N]), 0));
    // dW = dyᵀ·x [out, in], only when W is trainable (the tape runs no thunk for inputs without grad).
    const dWThunk = () => tidy(() => matmul(dy.view([M, N]), sx.view([M, K]), { transA: true }));
    return b ? [dxThunk, dWThunk, dbThunk, dAThunk, dBThunk] : [dxThunk, dWThunk, dAThunk, dBThunk];
  });
  u?.dispose();
  return out;
}
