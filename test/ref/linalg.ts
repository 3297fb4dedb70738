// float64 CPU references for matmul, softmax and layout ops (row-major, plain loops).
import { erf64 } from './special.js';

export type Act = 'none' | 'relu' | 'gelu' | 'geluTanh' | 'silu';

/**
 * C[b] = act(op(A[b])·op(B[b]) + bias) in float64. a is [batchA, rows, cols] flattened (batchA 1 or
 * `batch`), likewise b; returns [batch, M, N].
 */
export function matmulRef(
  a: ArrayLike<number>, b: ArrayLike<number>,
  o: { batch: number; M: number; N: number; K: number; transA?: boolean; transB?: boolean; aBatched: boolean; bBatched: boolean; bias?: ArrayLike<number>; act?: Act },
): Float64Array {
  const { batch, M, N, K } = o;
  const out = new Float64Array(batch * M * N);
  for (let t = 0; t < batch; t++) {
    const ab = o.aBatched ? t * M * K : 0;
    const bb = o.bBatched ? t * K * N : 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = o.transA ? a[ab + k * M + m] : a[ab + m * K + k];
          const bv = o.transB ? b[bb + n * K + k] : b[bb + k * N + n];
          s += av * bv;
        }
        if (o.bias) s += o.bias[n];
        out[(t * M + m) * N + n] = activation(s, o.act ?? 'none');
      }
    }
  }
  return out;
}

export function activation(x: number, act: Act): number {
  switch (act) {
    case 'relu': return Math.max(x, 0);
    case 'gelu': return 0.5 * x * (1 + erf64(x / Math.SQRT2));
    case 'geluTanh': return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    case 'silu': return x / (1 + Math.exp(-x));
    default: return x;
  }
}

/** Softmax (or log-softmax) over the last axis of [rows, len]. */
export function softmaxRef(x: ArrayLike<number>, rows: number, len: number, log = false): Float64Array {
  const out = new Float64Array(rows * len);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < len; j++) m = Math.max(m, x[r * len + j]);
    let s = 0;
    for (let j = 0; j < len; j++) s += Math.exp(x[r * len + j] - m);
    for (let j = 0; j < len; j++) {
      const v = x[r * len + j] - m;
      out[r * len + j] = log ? v - Math.log(s) : Math.exp(v) / s;
    }
  }
  return out;
}

export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
  return s;
}

/** y = x.permute(dims) made contiguous. */
export function permuteRef(x: ArrayLike<number>, shape: readonly number[], dims: readonly number[]): Float64Array {
  const outShape = dims.map((d) => shape[d]);
  const n = outShape.reduce((p, q) => p * q, 1);
  const xs = strides(shape);
  const out = new Float64Array(n);
  const idx = new Array<number>(outShape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let rem = i;
    for (let d = outShape.length - 1; d >= 0; d--) { idx[d] = rem % outShape[d]; rem = Math.floor(rem / outShape[d]); }
    let src = 0;
    for (let d = 0; d < outShape.length; d++) src += idx[d] * xs[dims[d]];
    out[i] = x[src];
  }
  return out;
}

/** x[..., start:end, ...] along `axis`. */
export function sliceRef(x: ArrayLike<number>, shape: readonly number[], axis: number, start: number, end: number): Float64Array {
  const outer = shape.slice(0, axis).reduce((p, q) => p * q, 1);
  const inner = shape.slice(axis + 1).reduce((p, q) => p * q, 1);
  const len = shape[axis];
  const w = end - start;
  const out = new Float64Array(outer * w * inner);
  for (let o = 0; o < outer; o++) for (let j = 0; j < w; j++) for (let i = 0; i < inner; i++) out[(o * w + j) * inner + i] = x[(o * len + start + j) * inner + i];
  return out;
}

/** Concatenation along `axis` of row-major arrays with the given shapes. */
export function concatRef(xs: ArrayLike<number>[], shapes: (readonly number[])[], axis: number): Float64Array {
  const outer = shapes[0].slice(0, axis).reduce((p, q) => p * q, 1);
  const inner = shapes[0].slice(axis + 1).reduce((p, q) => p * q, 1);
  const total = shapes.reduce((s, sh) => s + sh[axis], 0);
  const out = new Float64Array(outer * total * inner);
  for (let o = 0; o < outer; o++) {
    let off = 0;
    xs.forEach((x, t) => {
      const len = shapes[t][axis];
      for (let j = 0; j < len * inner; j++) out[(o * total + off) * inner + j] = x[o * len * inner + j];
      off += len;
    });
  }
  return out;
}
