// The LoRA linear on the fragment matmul: y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ with f16 operands and f32
// accumulation. Two launches: u = s·x·Aᵀ [M, R] (f32), then x·Wᵀ + b with u·Bᵀ as the product's tail
// segment (kernels/matmul_f16.wgsl: K + R k in one pass, so the low-rank term costs R/K of the main
// product and no extra output pass). x, W may be f16 or f32; A, B are the f32 trainable factors
// (master copies; staged as f16). Gradients are f32: dx = dy·W + g·A in one launch (tail again,
// g = s·dy·B), dA = gᵀ·x, dB = dyᵀ·u, db = Σ dy, and dW = dyᵀ·x only when W is trainable.
// loraLinear() (./lora.ts) routes here when an operand is f16 or autocast is on.
import { loraShapes } from './lora_shapes.js';
import { record } from '../../autograd/tape.js';
import { Tensor, tidy } from '../tensor.js';
import { noTail, launchMm16, type Mm16Geometry, type Mm16Flags, type Mm16Types } from '../plan/mm16.js';
import { chooseMm16Tile } from '../plan/mm16-tune.js';
import { matmulGeometry } from '../plan/matmul.js';
import type { StoreType } from '../plan/frag.js';
import { matmulF16, requireFragKernels, storeType } from './matmul_f16.js';
import { sum } from './reduce.js';
import { cast } from './cast.js';

export interface LoraF16Options {
  out?: StoreType;
  /** Forces a fragment tile id for every product (tests, bench). */
  tile?: string;
}

/** One fragment product (with or without a tail) on its chosen tile. */
function product(g: Mm16Geometry, f: Mm16Flags, types: Mm16Types, bufs: Parameters<typeof launchMm16>[4], tile?: string): void {
  launchMm16(chooseMm16Tile(g, f, types, tile), g, f, types, bufs);
}

const f32Of = (t: Tensor): Tensor => (t.dtype === 'f32' ? t.retain() : cast(t, 'f32'));

export function loraLinearF16(x: Tensor, W: Tensor, b: Tensor | null | undefined, A: Tensor, B: Tensor, scale: number, opts: LoraF16Options = {}): Tensor {
  const TX = storeType(x, 'loraLinear');
  const TW = storeType(W, 'loraLinear');
  storeType(A, 'loraLinear');
  storeType(B, 'loraLinear');
  const { M, K, N, R } = loraShapes(x, W, b, A, B);
  const out = opts.out ?? TX;
  requireFragKernels('loraLinear', [TX, TW, out, 'f16']);
  const u = Tensor.empty([M, R]);
  const y = Tensor.empty([...x.shape.slice(0, -1), N], out);
  if (M * N > 0) {
    // The tail reads A and B as f32 (they are the trainable f32 factors; an f16 one is widened).
    const A32 = f32Of(A);
    const B32 = f32Of(B);
    const b32 = b ? f32Of(b) : undefined;
    const gu = noTail(matmulGeometry(M, K, R, { transB: true }));
    product(gu, { act: 'none', hasBias: false, transA: false, transB: true, alpha: scale }, { TA: TX, TB: 'f32', TC: 'f32', FT: 'f16' },
      { a: x.buffer, b: A32.buffer, c: u.buffer }, opts.tile);
    const gy: Mm16Geometry = { ...matmulGeometry(M, K, N, { transB: true }), K2: R, sb2k: 1, sb2n: R };
    product(gy, { act: 'none', hasBias: !!b32, transA: false, transB: true, alpha: 1 }, { TA: TX, TB: TW, TC: out, FT: 'f16' },
      { a: x.buffer, b: W.buffer, c: y.buffer, bias: b32?.buffer, a2: u.buffer, b2: B32.buffer }, opts.tile);
    A32.dispose();
    B32.dispose();
    b32?.dispose();
  }

  const inputs = b ? [x, W, b, A, B] : [x, W, A, B];
  const res = record('loraLinearF16', inputs, y, [x, W, A, B, u], (dy, [sx, sW, sA, sB, su]) => {
    const o = { out: 'f32' as const, tile: opts.tile };
    const dy2 = dy.view([M, N]);
    const x2 = sx.view([M, K]);
    let g: Tensor | null = null;
    // g = s·dy·B [M, R], shared by dx and dA (made once; the last of them frees it).
    const getG = () => (g ??= matmulF16(dy2, sB, { ...o, alpha: scale }));
    const needA = A.requiresGrad;
    const dxThunk = () => {
      const gg = getG();
      const dx = Tensor.empty(x.shape);
      const A2 = f32Of(sA);
      const gx: Mm16Geometry = { ...matmulGeometry(M, N, K), K2: R, sb2k: K, sb2n: 1 };
      product(gx, { act: 'none', hasBias: false, transA: false, transB: false, alpha: 1 }, { TA: storeType(dy, 'loraLinear'), TB: storeType(sW, 'loraLinear'), TC: 'f32', FT: 'f16' },
        { a: dy.buffer, b: sW.buffer, c: dx.buffer, a2: gg.buffer, b2: A2.buffer }, opts.tile);
      A2.dispose();
      if (!needA) gg.dispose();
      return dx;
    };
    const dAThunk = () => {
      const dA = matmulF16(getG(), x2, { ...o, transA: true });
      g?.dispose();
      return dA;
    };
    const dBThunk = () => matmulF16(dy2, su, { ...o, transA: true });
    const dbThunk = () => tidy(() => sum(dy2.dtype === 'f32' ? dy2 : cast(dy2, 'f32'), 0));
    const dWThunk = () => matmulF16(dy2, x2, { ...o, transA: true });
    // The views live until the tape has run the last thunk it asks for of this node.
    const lastNeeded = inputs.map((t) => t.requiresGrad).lastIndexOf(true);
    const thunks = b ? [dxThunk, dWThunk, dbThunk, dAThunk, dBThunk] : [dxThunk, dWThunk, dAThunk, dBThunk];
    return thunks.map((f, i) => () => {
      const r = f();
      if (i === lastNeeded) {
        dy2.dispose();
        x2.dispose();
      }
      return r;
    });
  });
  u.dispose(); // the tape keeps its own reference when the op was recorded
  return res;
}
