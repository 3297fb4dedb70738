// LoRA linear: x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ with W frozen (no dW ever). See kernels/lora.wgsl.
import source from '../../../kernels/lora.wgsl';
import { ShapeError } from '../../gpu/errors.js';
import { gpu, f32 } from '../../gpu/runtime.js';
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';
import { sum } from './reduce.js';

const WG = 256;

/**
 * y = x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ for x [..., in], W [out, in] (frozen), b [out] (optional),
 * A [r, in], B [out, r]; scale is usually α/r. Backward gives dx, dA, dB and db; W gets no
 * gradient even when it requires one.
 */
export function loraLinear(x: Tensor, W: Tensor, b: Tensor | null | undefined, A: Tensor, B: Tensor, scale: number): Tensor {
  for (const [n, t] of [['x', x], ['W', W], ['A', A], ['B', B], ['b', b]] as const) {
    if (t && t.dtype !== 'f32') throw new ShapeError(`loraLinear: ${n} must be f32, got ${t.dtype}`);
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
  const params = [M, N, K, R, f32(scale), 0, 0, 0];
  const run = (name: string, entry: string, buffers: GPUBuffer[], count: number, hasBias = false) => {
    if (count === 0) return;
    gpu().dispatch({
      kernel: { name: `lora.${name}`, code: source, entry, constants: { WG, HAS_BIAS: hasBias ? 1 : 0 } },
      buffers,
      params,
      workgroups: Math.ceil(count / WG),
    });
  };

  const u = Tensor.empty([M, R]);
  run('down', 'lora_down', [x.buffer, A.buffer, u.buffer], M * R);
  const y = Tensor.empty([...x.shape.slice(0, -1), N]);
  run('forward', 'lora_forward', [x.buffer, W.buffer, (b ?? W).buffer, u.buffer, B.buffer, y.buffer], M * N, !!b);

  const inputs = b ? [x, W, b, A, B] : [x, W, A, B];
  const out = record('loraLinear', inputs, y, [x, W, A, B, u], (dy, [sx, sW, sA, sB, su]) => {
    // g = scale·dy·B feeds dx and dA; made once by whichever needs it first, freed by the last.
    const needA = A.requiresGrad;
    let g: Tensor | null = null;
    const getG = () => {
      if (!g) {
        g = Tensor.empty([M, R]);
        run('gdown', 'lora_gdown', [dy.buffer, sB.buffer, g.buffer], M * R);
      }
      return g;
    };
    const dxThunk = () => {
      const dx = Tensor.empty(x.shape);
      const gg = getG();
      run('dx', 'lora_dx', [dy.buffer, sW.buffer, gg.buffer, sA.buffer, dx.buffer], M * K);
      if (!needA) gg.dispose();
      return dx;
    };
    const dAThunk = () => {
      const dA = Tensor.empty(A.shape);
      const gg = getG();
      run('dA', 'lora_dA', [gg.buffer, sx.buffer, dA.buffer], R * K);
      gg.dispose();
      return dA;
    };
    const dBThunk = () => {
      const dB = Tensor.empty(B.shape);
      run('dB', 'lora_dB', [dy.buffer, su.buffer, dB.buffer], N * R);
      return dB;
    };
    const dbThunk = () => {
      const d2 = dy.view([M, N]);
      const db = sum(d2, 0);
      d2.dispose();
      return db;
    };
    return b ? [dxThunk, null, dbThunk, dAThunk, dBThunk] : [dxThunk, null, dAThunk, dBThunk];
  });
  u.dispose();
  return out;
}
