// The shape contract of the LoRA linear, shared by the f32 (lora.ts) and fragment (lora_f16.ts) kernels.
import { ShapeError } from '../../errors.js';
import type { Tensor } from '../tensor.js';

/** Checks x [..., in], W [out, in], b [out], A [r, in], B [out, r]; returns K = in, N = out, R = r and the rows M. */
export function loraShapes(x: Tensor, W: Tensor, b: Tensor | null | undefined, A: Tensor, B: Tensor): { M: number; K: number; N: number; R: number } {
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
  return { M: x.size / Math.max(K, 1), K, N, R };
}
