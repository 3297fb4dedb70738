// Layout ops: reshape (a view recorded on the tape, no copy) and the copies of kernels/layout.wgsl:
// permute/transpose, slice, concat, chunk. The copies move 4-byte elements bit for bit, so f32 and i32
// tensors both work; only f32 results take part in autograd.
import { ShapeError, ArgumentError, DTypeError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor, numel } from '../tensor.js';
import { zeros } from './elementwise.js';
import { readOptions } from './options.js';
import { settings } from '../../settings.js';

const code = kernelModule('layout');
const PERMUTE = defineParams('layout.wgsl', 'PermuteParams', { n: 'u32', rank: 'u32', out_shape: 'array<vec4<u32>, 2>', in_strides: 'array<vec4<u32>, 2>' });
const AXIS = defineParams('layout.wgsl', 'AxisParams', {
  outer: 'u32', inner: 'u32', count: 'u32', src_len: 'u32', src_start: 'u32', dst_len: 'u32', dst_start: 'u32',
});
const CONCAT2 = defineParams('layout.wgsl', 'Concat2Params', { outer: 'u32', inner: 'u32', len0: 'u32', len1: 'u32' });

/** Same storage, new shape (one -1 allowed); differentiable. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const y = x.view(shape);
  return record('reshape', [x], y, [], (dy) => [() => dy.view(x.shape)]);
}

// ------------------------------------------------------------------------------------------------
// Copies

const LAYOUT_WG = 256;
const MAX_PERMUTE_RANK = 8;

function fourByte(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (t.dtype === 'f16') throw new DTypeError(`${op}: f16 tensors are not supported (cast to f32 first)`);
}

function normalizeAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new ShapeError(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** y = x.permute(dims), contiguous. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  fourByte('permute', x);
  const rank = x.rank;
  const d = dims.map((v) => (v < 0 ? v + rank : v));
  if (d.length !== rank || new Set(d).size !== rank || d.some((v) => !Number.isInteger(v) || v < 0 || v >= rank)) {
    throw new ShapeError(`permute: dims [${dims}] is not a permutation of the ${rank} axes of [${x.shape}]`);
  }
  if (rank > MAX_PERMUTE_RANK) throw new ShapeError(`permute: rank ${rank} > ${MAX_PERMUTE_RANK} is not supported`);
  const outShape = d.map((v) => x.shape[v]);
  const identity = d.every((v, i) => v === i);
  let y: Tensor;
  if (identity) {
    y = x.view(outShape);
  } else {
    y = Tensor.empty(outShape, x.dtype);
    if (y.size > 0) {
      const inStrides: number[] = new Array(rank);
      let s = 1;
      for (let i = rank - 1; i >= 0; i--) { inStrides[i] = s; s *= x.shape[i]; }
      gpu().dispatch({
        kernel: { name: 'layout.permute', code, entry: 'permute', constants: { WG: LAYOUT_WG } },
        buffers: [x.buffer, y.buffer],
        params: PERMUTE.of({ n: y.size, rank, out_shape: outShape, in_strides: d.map((v) => inStrides[v]) }),
        workgroups: Math.ceil(y.size / LAYOUT_WG),
      });
    }
  }
  const inverse = new Array<number>(rank);
  d.forEach((v, i) => { inverse[v] = i; });
  return record('permute', [x], y, [], (dy) => [() => permute(dy, inverse)]);
}

/** Swaps two axes (a contiguous copy). */
export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  const a = normalizeAxis(d0, x.rank, 'transpose');
  const b = normalizeAxis(d1, x.rank, 'transpose');
  const dims = [...Array(x.rank).keys()];
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

/** Copies `count` entries along `axis` from src[srcStart..] to dst[dstStart..] (same outer/inner). */
function copyAxis(src: Tensor, srcStart: number, dst: Tensor, dstStart: number, axis: number, count: number): void {
  const outer = numel(src.shape.slice(0, axis));
  const inner = numel(src.shape.slice(axis + 1));
  const n = outer * count * inner;
  if (n === 0) return;
  gpu().dispatch({
    kernel: { name: 'layout.copy_axis', code, entry: 'copy_axis', constants: { WG: LAYOUT_WG } },
    buffers: [src.buffer, dst.buffer],
    params: AXIS.of({ outer, inner, count, src_len: src.shape[axis], src_start: srcStart, dst_len: dst.shape[axis], dst_start: dstStart }),
    workgroups: Math.ceil(n / LAYOUT_WG),
  });
}

/** slice's options: the Python range start:end along the axis. */
export interface SliceOptions {
  /** Default 0. */
  start?: number;
  /** Exclusive; default the axis length. */
  end?: number;
}
const SLICE_SPEC = { start: 'number', end: 'number' } as const;

/** x[..., start:end, ...] along `axis` (a copy; negative start/end count from the end, as in Python). */
export function slice(x: Tensor, axis: number, opts: SliceOptions = {}): Tensor {
  const { start = 0, end } = readOptions('slice', opts, SLICE_SPEC);
  fourByte('slice', x);
  const a = normalizeAxis(axis, x.rank, 'slice');
  const len = x.shape[a];
  const s = start < 0 ? Math.max(0, start + len) : Math.min(start, len);
  const e = end === undefined ? len : end < 0 ? Math.max(0, end + len) : Math.min(end, len);
  if (!Number.isInteger(s) || !Number.isInteger(e)) throw new ArgumentError(`slice: start/end must be integers, got ${start}, ${end}`);
  const count = Math.max(0, e - s);
  const outShape = x.shape.map((d, i) => (i === a ? count : d));
  const y = Tensor.empty(outShape, x.dtype);
  copyAxis(x, s, y, 0, a, count);
  return record('slice', [x], y, [], (dy) => [
    () => {
      const dx = zeros(x.shape);
      copyAxis(dy, 0, dx, s, a, count);
      return dx;
    },
  ]);
}

/** Concatenation along `axis`; every other dimension must match. */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  if (tensors.length === 0) throw new ShapeError('concat: needs at least one tensor');
  fourByte('concat', ...tensors);
  const first = tensors[0];
  const a = normalizeAxis(axis, first.rank, 'concat');
  for (const t of tensors) {
    if (t.dtype !== first.dtype || t.rank !== first.rank || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new ShapeError(`concat: shapes ${tensors.map((q) => `[${q.shape}]${q.dtype}`).join(', ')} differ off axis ${axis}`);
    }
  }
  const total = tensors.reduce((s, t) => s + t.shape[a], 0);
  const y = Tensor.empty(first.shape.map((d, i) => (i === a ? total : d)), first.dtype);
  const offsets: number[] = [];
  let off = 0;
  for (const t of tensors) {
    offsets.push(off);
    off += t.shape[a];
  }
  if (tensors.length === 2 && y.size > 0 && settings.fuse) {
    // Two inputs (the U-Net's hidden state and skip): one launch.
    const [t0, t1] = tensors;
    gpu().dispatch({
      kernel: { name: 'layout.concat2', code, entry: 'concat2', constants: { WG: LAYOUT_WG } },
      buffers: [t0.buffer, t1.buffer, y.buffer],
      params: CONCAT2.of({ outer: numel(first.shape.slice(0, a)), inner: numel(first.shape.slice(a + 1)), len0: t0.shape[a], len1: t1.shape[a] }),
      workgroups: Math.ceil(y.size / LAYOUT_WG),
    });
  } else {
    tensors.forEach((t, k) => copyAxis(t, 0, y, offsets[k], a, t.shape[a]));
  }
  return record('concat', tensors, y, [], (dy) => tensors.map((t, k) => () => {
    const dx = Tensor.empty(t.shape);
    copyAxis(dy, offsets[k], dx, 0, a, t.shape[a]);
    return dx;
  }));
}

/** Splits `axis` into n pieces of ceil(len / n) (the last may be smaller), like torch.chunk. */
export function chunk(x: Tensor, n: number, axis: number): Tensor[] {
  const a = normalizeAxis(axis, x.rank, 'chunk');
  if (!Number.isInteger(n) || n < 1) throw new ArgumentError(`chunk: n must be a positive integer, got ${n}`);
  const len = x.shape[a];
  const size = Math.ceil(len / n);
  const out: Tensor[] = [];
  for (let s = 0; s < len; s += size) out.push(slice(x, a, { start: s, end: Math.min(s + size, len) }));
  return out;
}
