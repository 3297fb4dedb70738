// Elementwise ops: unary (with gradients), broadcasting binary, fill.
import family from '../../../kernels/elementwise.wgsl';
import { withCommon } from '../../gpu/wgsl.js';
import { ShapeError, DTypeError } from '../../errors.js';
import { gpu, f32, type Param } from '../../gpu/runtime.js';
import { record } from '../../autograd/tape.js';
import { Tensor, tidy } from '../tensor.js';
import { sumToShape } from './reduce.js';

const source = withCommon(family);

const WG = 256;
const MAX_RANK = 8;

function requireF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (t.dtype !== 'f32') throw new DTypeError(`${op}: expects f32 tensors, got ${t.dtype} (cast first)`);
}

export const UNARY = {
  neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, silu: 5, geluTanh: 6, gelu: 7, quickGelu: 8,
  sigmoid: 9, tanh: 10, relu: 11, abs: 12, square: 13, affine: 14, pow: 15, reciprocal: 16, sin: 17, cos: 18,
} as const;
export type UnaryOp = keyof typeof UNARY;

function launchUnary(entry: 'unary' | 'unary_backward', op: UnaryOp, inputs: Tensor[], out: Tensor, alpha: number, beta: number): void {
  gpu().dispatch({
    kernel: { name: `elementwise.${op}`, code: source, entry, constants: { OP: UNARY[op], WG } },
    buffers: [...inputs.map((t) => t.buffer), out.buffer],
    params: [out.size, 0, f32(alpha), f32(beta)],
    workgroups: Math.ceil(out.size / WG),
  });
}

/** y = op(x); alpha/beta parameterise affine (alpha·x + beta) and pow (x^alpha). */
export function unary(op: UnaryOp, x: Tensor, alpha = 1, beta = 0): Tensor {
  requireF32(op, x);
  const y = Tensor.empty(x.shape);
  if (x.size) launchUnary('unary', op, [x], y, alpha, beta);
  return record(op, [x], y, [x], (dy, [xs]) => [
    () => {
      const dx = Tensor.empty(xs.shape);
      if (dx.size) launchUnary('unary_backward', op, [xs, dy], dx, alpha, beta);
      return dx;
    },
  ]);
}

export const neg = (x: Tensor) => unary('neg', x);
export const exp = (x: Tensor) => unary('exp', x);
export const log = (x: Tensor) => unary('log', x);
export const sqrt = (x: Tensor) => unary('sqrt', x);
export const rsqrt = (x: Tensor) => unary('rsqrt', x);
export const silu = (x: Tensor) => unary('silu', x);
/** Exact (erf) GELU, as torch's default and diffusers' GEGLU use. */
export const gelu = (x: Tensor) => unary('gelu', x);
export const geluTanh = (x: Tensor) => unary('geluTanh', x);
/** CLIP's x·σ(1.702x). */
export const quickGelu = (x: Tensor) => unary('quickGelu', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const tanh = (x: Tensor) => unary('tanh', x);
export const relu = (x: Tensor) => unary('relu', x);
export const abs = (x: Tensor) => unary('abs', x);
export const square = (x: Tensor) => unary('square', x);
export const reciprocal = (x: Tensor) => unary('reciprocal', x);
export const pow = (x: Tensor, e: number) => unary('pow', x, e);
/** alpha·x + beta */
export const affine = (x: Tensor, alpha: number, beta = 0) => unary('affine', x, alpha, beta);
export const scale = (x: Tensor, alpha: number) => unary('affine', x, alpha, 0);

export const BINARY = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5 } as const;
const RAW_BINARY = { ...BINARY, equal: 7, first: 8 } as const;
export type BinaryOp = keyof typeof BINARY;

/** NumPy broadcasting of two shapes. */
export function broadcastShapes(a: readonly number[], b: readonly number[], op = 'broadcast'): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new ShapeError(`${op}: shapes [${a}] and [${b}] do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Row-major strides of `shape` seen from `outShape`, with 0 on broadcast dimensions. */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const rank = outShape.length;
  const strides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const o = rank - shape.length + i;
    strides[o] = shape[i] === 1 ? 0 : s;
    s *= shape[i];
  }
  return strides;
}

/** One launch of the binary kernel; broadcasting is done by strides (rank ≤ 8). */
function launchBinary(op: keyof typeof RAW_BINARY, a: Tensor, b: Tensor, out: Tensor): void {
  const same = a.shape.join() === out.shape.join() && b.shape.join() === out.shape.join();
  const shape = [...out.shape];
  if (!same && shape.length > MAX_RANK) throw new ShapeError(`${op}: broadcasting supports rank ≤ ${MAX_RANK}, got [${shape}]`);
  const pad = (v: number[]) => [...v, ...new Array<number>(MAX_RANK - v.length).fill(0)];
  const params: Param[] = [out.size, shape.length, 0, 0];
  if (!same) params.push(...pad(shape), ...pad(broadcastStrides(a.shape, shape)), ...pad(broadcastStrides(b.shape, shape)));
  gpu().dispatch({
    kernel: { name: `elementwise.${op}`, code: source, entry: 'binary', constants: { OP: RAW_BINARY[op], WG, BROADCAST: same ? 0 : 1 } },
    buffers: [a.buffer, b.buffer, out.buffer],
    params,
    workgroups: Math.ceil(out.size / WG),
  });
}

export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  requireF32(op, a, b);
  const out = Tensor.empty(broadcastShapes(a.shape, b.shape, op));
  if (out.size) launchBinary(op, a, b, out);
  const reduceTo = (g: Tensor, t: Tensor) => (g.shape.join() === t.shape.join() ? g : sumToShape(g, t.shape));
  // Each gradient is built in a tidy scope: its intermediates are freed, only the gradient survives.
  const grad = (fn: () => Tensor) => () => tidy(fn);
  return record(op, [a, b], out, op === 'add' || op === 'sub' ? [] : [a, b], (dy, saved) => {
    switch (op) {
      case 'add':
        return [grad(() => reduceTo(dy, a)), grad(() => reduceTo(dy, b))];
      case 'sub':
        return [grad(() => reduceTo(dy, a)), grad(() => reduceTo(neg(dy), b))];
      case 'mul': {
        const [sa, sb] = saved;
        return [grad(() => reduceTo(binary('mul', dy, sb), a)), grad(() => reduceTo(binary('mul', dy, sa), b))];
      }
      case 'div': {
        const [sa, sb] = saved;
        // d(a/b)/db = -a/b² = -(a/b)/b
        return [
          grad(() => reduceTo(binary('div', dy, sb), a)),
          grad(() => reduceTo(neg(binary('div', binary('mul', dy, binary('div', sa, sb)), sb)), b)),
        ];
      }
      default: {
        // max/min: the gradient goes to the operand that was picked (a on ties).
        const [sa, sb] = saved;
        const pickedA = () => equal(binary(op, sa, sb), sa);
        return [grad(() => reduceTo(binary('mul', dy, pickedA()), a)), grad(() => reduceTo(binary('mul', dy, affine(pickedA(), -1, 1)), b))];
      }
    }
  });
}

/** 1 where a == b (broadcasting), else 0. Not differentiable. */
export function equal(a: Tensor, b: Tensor): Tensor {
  requireF32('equal', a, b);
  const out = Tensor.empty(broadcastShapes(a.shape, b.shape, 'equal'));
  if (out.size) launchBinary('equal', a, b, out);
  return out;
}

/** Broadcasts `x` to `shape` as a new contiguous tensor. */
export function expandTo(x: Tensor, shape: readonly number[]): Tensor {
  requireF32('expandTo', x);
  const target = broadcastShapes(x.shape, shape, 'expandTo');
  if (target.join() !== shape.join()) throw new ShapeError(`expandTo: [${x.shape}] cannot expand to [${shape}]`);
  const out = Tensor.empty(shape);
  if (out.size) launchBinary('first', x, x, out);
  return record('expand', [x], out, [], (dy) => [() => sumToShape(dy, x.shape)]);
}

export const add = (a: Tensor, b: Tensor) => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor) => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor) => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor) => binary('div', a, b);
export const maximum = (a: Tensor, b: Tensor) => binary('maximum', a, b);
export const minimum = (a: Tensor, b: Tensor) => binary('minimum', a, b);

/** A new tensor filled with `value`. */
export function fill(shape: readonly number[], value: number): Tensor {
  const t = Tensor.empty(shape);
  if (t.size) {
    gpu().dispatch({
      kernel: { name: 'elementwise.fill', code: source, entry: 'fill', constants: { WG } },
      buffers: [t.buffer],
      params: [t.size, 0, f32(value), 0],
      workgroups: Math.ceil(t.size / WG),
    });
  }
  return t;
}

export const zeros = (shape: readonly number[]) => fill(shape, 0);
export const ones = (shape: readonly number[]) => fill(shape, 1);
export const onesLike = (t: Tensor) => fill(t.shape, 1);
export const zerosLike = (t: Tensor) => fill(t.shape, 0);
