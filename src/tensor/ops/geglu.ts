// GEGLU: h [..., 2·D] → h[..., :D] · gelu(h[..., D:]) (exact erf GELU; diffusers' order: value first,
// gate second). One launch forward, one backward. See kernels/geglu.wgsl.
import { ShapeError, DTypeError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';

const code = kernelModule('geglu', { libs: ['unary'] });
const P = defineParams('geglu.wgsl', 'Params', { n: 'u32', D: 'u32' });

const WG = 256;

function launch(entry: 'geglu_forward' | 'geglu_backward', buffers: GPUBuffer[], n: number, D: number): void {
  if (n === 0) return;
  gpu().dispatch({
    kernel: { name: `geglu.${entry.slice(6)}`, code, entry, constants: { WG } },
    buffers,
    params: P.of({ n, D }),
    workgroups: Math.ceil(n / WG),
  });
}

/** out = value · gelu(gate) with [value | gate] = h split in half along the last dim: [..., 2·D] → [..., D]. */
export function geglu(h: Tensor): Tensor {
  if (h.dtype !== 'f32') throw new DTypeError(`geglu: h must be f32, got ${h.dtype}`);
  const last = h.shape[h.rank - 1];
  if (h.rank < 1 || last % 2 !== 0) throw new ShapeError(`geglu: h [${h.shape}] must be [..., 2·D] (an even last dim)`);
  const D = last / 2;
  const out = Tensor.empty([...h.shape.slice(0, -1), D]);
  launch('geglu_forward', [h.buffer, out.buffer], out.size, D);
  return record('geglu', [h], out, [h], (dy, [sh]) => [
    () => {
      const dh = Tensor.empty(sh.shape);
      launch('geglu_backward', [sh.buffer, dy.buffer, dh.buffer], dy.size, D);
      return dh;
    },
  ]);
}
