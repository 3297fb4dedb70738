// Tensor values → little-endian bytes of a writable dtype (F16/BF16 rounded to nearest even, integers range-checked).
import { floatsToHalf } from '../../tensor/half.js';
import { DTYPE_SIZES } from './dtypes.js';
import { SafetensorsError } from './error.js';

export type WritableDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface TensorToWrite {
  dtype: WritableDType;
  shape: readonly number[];
  /** Values (converted to dtype; floats rounded to nearest even for F16/BF16), or the raw little-endian bytes. */
  data: ArrayLike<number> | BigInt64Array | Uint8Array;
  /** True when `data` holds the raw bytes already (a Uint8Array of numel × size bytes). */
  raw?: boolean;
}

function f32ToBf16Bits(x: number, f: Float32Array, u: Uint32Array): number {
  f[0] = x;
  const b = u[0];
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff)) return (b >>> 16) | 0x40; // quiet NaN
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Encodes one tensor's values as little-endian bytes. */
export function encodeTensor(t: TensorToWrite, what = 'tensor', file = '<write>'): Uint8Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new SafetensorsError(file, what, `shape [${t.shape.join(', ')}] must hold non-negative integers`);
  }
  if (!Object.prototype.hasOwnProperty.call(DTYPE_SIZES, t.dtype)) throw new SafetensorsError(file, what, `cannot write dtype ${t.dtype}`);
  const size = DTYPE_SIZES[t.dtype];
  if (t.raw) {
    if (!(t.data instanceof Uint8Array) || t.data.byteLength !== n * size) {
      throw new SafetensorsError(file, what, `raw data must be a Uint8Array of ${n * size} bytes`);
    }
    return t.data;
  }
  if (t.data.length !== n) throw new SafetensorsError(file, what, `${t.data.length} values for shape [${t.shape.join(', ')}] (${n} elements)`);
  const out = new Uint8Array(n * size);
  const dv = new DataView(out.buffer);
  const src = t.data as ArrayLike<number | bigint>;
  switch (t.dtype) {
    case 'F32': for (let i = 0; i < n; i++) dv.setFloat32(4 * i, Number(src[i]), true); break;
    case 'F64': for (let i = 0; i < n; i++) dv.setFloat64(8 * i, Number(src[i]), true); break;
    case 'F16': {
      const h = floatsToHalf(t.data instanceof BigInt64Array ? Array.from(t.data, Number) : (t.data as ArrayLike<number>));
      for (let i = 0; i < n; i++) dv.setUint16(2 * i, h[i], true);
      break;
    }
    case 'BF16': {
      const f = new Float32Array(1);
      const u = new Uint32Array(f.buffer);
      for (let i = 0; i < n; i++) dv.setUint16(2 * i, f32ToBf16Bits(Number(src[i]), f, u), true);
      break;
    }
    case 'I64':
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new SafetensorsError(file, what, `element ${i} = ${v} is not an integer`);
        dv.setBigInt64(8 * i, BigInt(v), true);
      }
      break;
    default: {
      const lim: Record<string, [number, number]> = { I32: [-(2 ** 31), 2 ** 31 - 1], I16: [-32768, 32767], I8: [-128, 127], U8: [0, 255], BOOL: [0, 1] };
      const [lo, hi] = lim[t.dtype];
      for (let i = 0; i < n; i++) {
        const v = Number(src[i]);
        if (!Number.isInteger(v) || v < lo || v > hi) throw new SafetensorsError(file, what, `element ${i} = ${v} does not fit ${t.dtype}`);
        if (size === 4) dv.setInt32(4 * i, v, true);
        else if (size === 2) dv.setInt16(2 * i, v, true);
        else dv.setUint8(i, v & 0xff);
      }
    }
  }
  return out;
}
