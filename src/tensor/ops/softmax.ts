// Softmax and log-softmax over the last axis (one invocation per row; kernels/softmax.wgsl).
import { ShapeError, DTypeError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';

const code = kernelModule('softmax');
const P = defineParams('softmax.wgsl', 'Params', { rows: 'u32', len: 'u32' });

const WG = 64;

function launch(entry: 'forward' | 'backward', log: boolean, buffers: GPUBuffer[], rows: number, len: number): void {
  gpu().dispatch({
    kernel: { name: log ? 'softmax.log' : 'softmax', code, entry, constants: { WG, LOG: log ? 1 : 0 } },
    buffers,
    params: P.of({ rows, len }),
    workgroups: Math.ceil(rows / WG),
  });
}

function softmaxImpl(x: Tensor, axis: number, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  if (x.dtype !== 'f32') throw new DTypeError(`${op}: expects f32, got ${x.dtype} (cast first)`);
  if (x.rank < 1) throw new ShapeError(`${op}: needs rank ≥ 1, got a scalar`);
  if (axis !== -1 && axis !== x.rank - 1) throw new ShapeError(`${op}: only the last axis is supported (got axis ${axis} of [${x.shape}]); transpose first`);
  const len = x.shape[x.rank - 1];
  const rows = len === 0 ? 0 : x.size / len;
  const y = Tensor.empty(x.shape);
  if (rows > 0) launch('forward', log, [x.buffer, y.buffer], rows, len);
  // The backward needs only the output.
  return record(op, [x], y, [y], (dy, [ys]) => [
    () => {
      const dx = Tensor.empty(x.shape);
      if (rows > 0) launch('backward', log, [ys.buffer, dy.buffer, dx.buffer], rows, len);
      return dx;
    },
  ]);
}

/** exp(x − max) / Σ exp(x − max) over the last axis. */
export const softmax = (x: Tensor, axis = -1) => softmaxImpl(x, axis, false);
/** x − max − log Σ exp(x − max) over the last axis. */
export const logSoftmax = (x: Tensor, axis = -1) => softmaxImpl(x, axis, true);
