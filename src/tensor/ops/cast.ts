// f32 ↔ f16 casts (kernels/cast.wgsl; adapters with 'shader-f16' only). Differentiable: the gradient
// is cast back to the input's dtype.
import { ArgumentError, DTypeError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';

const code = kernelModule('cast');
const P = defineParams('cast.wgsl', 'Params', { n: 'u32' });

const WG = 256;

/** Whether this adapter can run cast() (WGSL f16). */
export function canCastF16(): boolean {
  return gpu().acquired.hasF16;
}

export function cast(x: Tensor, dtype: 'f16' | 'f32'): Tensor {
  if (x.dtype === 'i32') throw new DTypeError('cast: i32 tensors are not supported');
  if (dtype !== 'f16' && dtype !== 'f32') throw new ArgumentError(`cast: unknown dtype '${dtype as string}'`);
  if (x.dtype === dtype) return record('cast', [x], x.retain(), [], (dy) => [() => dy.retain()]);
  if (!canCastF16()) throw new DTypeError("cast: this adapter lacks 'shader-f16'");
  const y = Tensor.empty(x.shape, dtype);
  if (y.size > 0) {
    gpu().dispatch({
      kernel: { name: `cast.${dtype}`, code, entry: dtype === 'f16' ? 'to_f16' : 'to_f32', constants: { WG } },
      buffers: [x.buffer, y.buffer],
      params: P.of({ n: y.size }),
      workgroups: Math.ceil(y.size / WG),
    });
  }
  const from = x.dtype as 'f16' | 'f32';
  return record('cast', [x], y, [], (dy) => [() => cast(dy, from)]);
}
