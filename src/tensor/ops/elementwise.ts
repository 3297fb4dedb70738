// Elementwise ops: unary (with gradients), broadcasting binary, fill. Op codes come from the shared
// table in src/gpu/opcodes.ts (the kernels switch on the same names).
import { ShapeError, DTypeError } from '../../errors.js';
import { opcode, type BinaryCode, type UnaryCode } from '../../gpu/opcodes.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor, tidy } from '../tensor.js';
import { sumToShape } from './reduce.js';
import { readOptions } from './options.js';

const code = kernelModule('elementwise', { libs: ['unary'] });
const P = defineParams('elementwise.wgsl', 'Params', {
  n: 'u32', rank: 'u32', alpha: 'f32', beta: 'f32',
  shape: 'array<vec4<u32>, 2>', a_strides: 'array<vec4<u32>, 2>', b_strides: 'array<vec4<u32>, 2>',
});

const WG = 256;
const MAX_RANK = 8;

function requireF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (t.dtype !== 'f32') throw new DTypeError(`${op}: expects f32 tensors, got ${t.dtype} (cast first)`);
}

export type UnaryOp = UnaryCode;

function launchUnary(entry: 'unary' | 'unary_backward', op: UnaryOp, inputs: Tensor[], out: Tensor, alpha: number, beta: number): void {
  gpu().dispatch({
    kernel: { name: `elementwise.${op}`, code, entry, constants: { OP: opcode('UNARY', op), WG } },
    buffers: [...inputs.map((t) => t.buffer), out.buffer],
    params: P.of({ n: out.size, rank: 0, alpha, beta }),
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
export const sin = (x: Tensor) => unary('sin', x);
export const cos = (x: Tensor) => unary('cos', x);
export const pow = (x: Tensor, e: number) => unary('pow', x, e);
/** affine's options: y = scale·x + shift. */
export interface AffineOptions {
  /** Default 1. */
  scale?: number;
  /** Default 0. */
  shift?: number;
}
const AFFINE_SPEC = { scale: 'number', shift: 'number' } as const;
/** scale·x + shift, one kernel (its gradient is scale·dy). */
export function affine(x: Tensor, opts: AffineOptions = {}): Tensor {
  const { scale: a = 1, shift: b = 0 } = readOptions('affine', opts, AFFINE_SPEC);
  return unary('affine', x, a, b);
}
export const scale = (x: Tensor, alpha: number) => unary('affine', x, alpha, 0);

/** The differentiable binary ops (equal and first are kernel-internal codes). */
export type BinaryOp = Exclude<BinaryCode, 'equal' | 'first'>;

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
function launchBinary(op: BinaryCode, a: Tensor, b: Tensor, out: Tensor): void {
  const same = a.shape.join() === out.shape.join() && b.shape.join() === out.shape.join();
  const shape = [...out.shape];
  if (!same && shape.length > MAX_RANK) throw new ShapeError(`${op}: broadcasting supports rank ≤ ${MAX_RANK}, got [${shape}]`);
  const params = same
    ? P.of({ n: out.size, rank: shape.length, alpha: 0, beta: 0 })
    : P.of({ n: out.size, rank: shape.length, alpha: 0, beta: 0, shape, a_strides: broadcastStrides(a.shape, shape), b_strides: broadcastStrides(b.shape, shape) });
  gpu().dispatch({
    kernel: { name: `elementwise.${op}`, code, entry: 'binary', constants: { OP: opcode('BINARY', op), WG, BROADCAST: same ? 0 : 1 } },
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
        return [grad(() => reduceTo(binary('mul', dy, pickedA()), a)), grad(() => reduceTo(binary('mul', dy, affine(pickedA(), { scale: -1, shift: 1 })), b))];
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
      kernel: { name: 'elementwise.fill', code, entry: 'fill', constants: { WG } },
      buffers: [t.buffer],
      params: P.of({ n: t.size, rank: 0, alpha: value, beta: 0 }),
      workgroups: Math.ceil(t.size / WG),
    });
  }
  return t;
}

export const zeros = (shape: readonly number[]) => fill(shape, 0);
export const ones = (shape: readonly number[]) => fill(shape, 1);
export const onesLike = (t: Tensor) => fill(t.shape, 1);
export const zerosLike = (t: Tensor) => fill(t.shape, 0);
