// Reductions over an axis (sum, mean, max) and sumToShape (the backward of broadcasting).
import { ShapeError } from '../../errors.js';
import { opcode, type ReduceCode } from '../../gpu/opcodes.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor, numel } from '../tensor.js';
import { affine, equal, expandTo, mul } from './elementwise.js';
import { reshape } from './layout.js';

const code = kernelModule('reduce');
const P = defineParams('reduce.wgsl', 'Params', { outer: 'u32', len: 'u32', inner: 'u32' });

const WG = 256;
type ReduceOp = ReduceCode;

function normAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new ShapeError(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}

function launch(op: ReduceOp, x: Tensor, axis: number): Tensor {
  const outer = numel(x.shape.slice(0, axis));
  const len = x.shape[axis];
  const inner = numel(x.shape.slice(axis + 1));
  if (len === 0) throw new ShapeError(`${op}: cannot reduce an empty axis`);
  const y = Tensor.empty(x.shape.filter((_, i) => i !== axis));
  gpu().dispatch({
    kernel: { name: `reduce.${op}`, code, entry: 'reduce_axis', constants: { OP: opcode('REDUCE', op), WG } },
    buffers: [x.buffer, y.buffer],
    params: P.of({ outer, len, inner }),
    workgroups: Math.ceil((outer * inner) / WG),
  });
  return y;
}

function reduce(op: ReduceOp, x: Tensor, axis: number, keepDims: boolean): Tensor {
  const a = normAxis(axis, x.rank, op);
  const keptShape = x.shape.map((d, i) => (i === a ? 1 : d));
  const raw = launch(op, x, a);
  let y = raw;
  if (keepDims) {
    y = raw.view(keptShape);
    raw.dispose();
  }
  return record(op, [x], y, op === 'max' ? [x, y] : [], (dy, saved) => [
    () => {
      const g = dy.view(keptShape);
      let dx: Tensor;
      if (op === 'max') {
        // The gradient goes to every position equal to the max (ties each get it, like torch.amax).
        const [xs, ys] = saved;
        const ym = ys.view(keptShape);
        const mask = equal(xs, ym);
        dx = mul(mask, g);
        mask.dispose();
        ym.dispose();
      } else {
        dx = expandTo(g, x.shape);
        if (op === 'mean') {
          const s = dx;
          dx = affine(s, { scale: 1 / x.shape[a] });
          s.dispose();
        }
      }
      g.dispose();
      return dx;
    },
  ]);
}

export const sum = (x: Tensor, axis: number, keepDims = false) => reduce('sum', x, axis, keepDims);
export const mean = (x: Tensor, axis: number, keepDims = false) => reduce('mean', x, axis, keepDims);
export const max = (x: Tensor, axis: number, keepDims = false) => reduce('max', x, axis, keepDims);

/** Sum of every element, as a scalar tensor. */
export function sumAll(x: Tensor): Tensor {
  const flat = reshape(x, [x.size]);
  const s = sum(flat, 0);
  flat.dispose();
  return s;
}

export function meanAll(x: Tensor): Tensor {
  const flat = reshape(x, [x.size]);
  const m = mean(flat, 0);
  flat.dispose();
  return m;
}

/** Sums `g` down to `shape` (the reverse of NumPy broadcasting). */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  let t = g;
  const lead = g.rank - shape.length;
  for (let i = 0; i < lead; i++) {
    const n = sum(t, 0);
    if (t !== g) t.dispose();
    t = n;
  }
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1 && t.shape[i] !== 1) {
      const n = sum(t, i, true);
      if (t !== g) t.dispose();
      t = n;
    }
  }
  if (t === g) return g.retain();
  const out = t.view(shape);
  t.dispose();
  return out;
}
