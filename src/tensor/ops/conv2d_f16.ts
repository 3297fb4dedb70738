// conv2d on the fragment kernels (kernels/conv2d_f16.wgsl): f16 operands with f32 accumulation (tensor
// cores where the device has subgroup matrices), or with f32 staging the split-K 'gemm' variant of the
// f32 conv. conv2d() (./conv2d.ts) routes here with its normalised geometry when an operand is f16,
// autocast is on, or the plan picks 'gemm'. Gradients are f32 (as for matmulF16).
import { DTypeError, ShapeError } from '../../errors.js';
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';
import { chooseConv16Tile, launchConv16, type ConvGeometry, type ConvMode, type Conv16Types } from '../plan/conv16.js';
import type { StoreType } from '../plan/frag.js';
import { requireFragKernels, storeType } from './matmul_f16.js';
import { sum } from './reduce.js';
import { cast } from './cast.js';

export type { ConvGeometry };

export interface ConvFragOptions {
  /** Output dtype (default: x's dtype). */
  out?: StoreType;
  /** Operand precision in the kernel (default f16; f32 is the f32 'gemm' variant). */
  staging?: StoreType;
  /** Forces a fragment tile id for every mode (tests, bench). */
  tile?: string;
}

function run(mode: ConvMode, g: ConvGeometry, src0: Tensor, src1: Tensor, bias: Tensor | null, dst: Tensor, ft: StoreType, tile?: string): void {
  const types: Conv16Types = { T0: storeType(src0, 'conv2d'), T1: storeType(src1, 'conv2d'), TD: dst.dtype as StoreType, FT: ft };
  requireFragKernels('conv2d', [types.T0, types.T1, types.TD, ft]);
  launchConv16(mode, chooseConv16Tile(mode, g, types, tile), g, types, { src0: src0.buffer, src1: src1.buffer, bias: bias?.buffer, dst: dst.buffer });
}

/**
 * y = conv2d(x, w) + bias on the fragment kernels, for a geometry conv2d() has already checked and
 * normalised (x [n, c, h, w], w [o, c, kh, kw], bias [o] f32 or f16).
 */
export function conv2dFrag(x: Tensor, w: Tensor, bias: Tensor | null | undefined, g: ConvGeometry, opts: ConvFragOptions = {}): Tensor {
  if (x.shape.join() !== [g.n, g.c, g.h, g.w].join() || w.shape.join() !== [g.o, g.c, g.kh, g.kw].join()) {
    throw new ShapeError(`conv2d: x [${x.shape}] and w [${w.shape}] do not match the planned geometry`);
  }
  const ft = opts.staging ?? 'f16';
  const out = opts.out ?? storeType(x, 'conv2d');
  if (bias && bias.dtype === 'i32') throw new DTypeError('conv2d: bias must be f32 or f16');
  const b32 = bias && bias.dtype === 'f16' ? cast(bias, 'f32') : bias ?? null;
  const y = Tensor.empty([g.n, g.o, g.oh, g.ow], out);
  if (y.size) run(0, g, x, w, b32, y, ft, opts.tile);
  if (b32 && b32 !== bias) b32.dispose();
  const inputs = bias ? [x, w, bias] : [x, w];
  return record('conv2dFrag', inputs, y, [x, w], (dy, [xs, ws]) => {
    const thunks: ((() => Tensor) | null)[] = [
      () => {
        const dx = Tensor.empty(x.shape);
        if (dx.size) run(1, g, dy, ws, null, dx, ft, opts.tile);
        return dx;
      },
      () => {
        const dw = Tensor.empty(w.shape);
        if (dw.size) run(2, g, xs, dy, null, dw, ft, opts.tile);
        return dw;
      },
    ];
    if (bias) {
      thunks.push(() => {
        const d32 = dy.dtype === 'f32' ? dy.retain() : cast(dy, 'f32');
        const v = d32.view([g.n, g.o, g.oh * g.ow]);
        d32.dispose();
        const s = sum(v, 2);
        v.dispose();
        const db = sum(s, 0);
        s.dispose();
        return db;
      });
    }
    return thunks;
  });
}
