// Raw little-endian tensor bytes → float32 or int32 values (F16 via a lookup table, BF16, F64, integer dtypes).
import { LpoError } from '../../errors.js';
import { DTYPE_SIZES, INT_DTYPES, type SafetensorsDType } from './dtypes.js';

let halfTable: Float32Array | null = null;
/** f16 bits → f32 via a 64K-entry table (the per-element formula is slow on 10⁹ values). */
function halfLut(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? sign * m * 2 ** -24 : e === 0x1f ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return (halfTable = t);
}

/** Raw little-endian bytes of one tensor → float32 values. */
export function decodeF32(bytes: Uint8Array, dtype: SafetensorsDType, what = 'tensor'): Float32Array {
  const size = DTYPE_SIZES[dtype];
  const n = bytes.byteLength / size;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32': {
      if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
      return new Float32Array(bytes.slice().buffer);
    }
    case 'F16': {
      const lut = halfLut();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = lut[dv.getUint16(2 * i, true)];
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
    case 'F64': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    }
    default:
      if (INT_DTYPES.has(dtype)) return Float32Array.from(decodeInt(bytes, dtype, what, false));
      throw new LpoError(`${what}: cannot decode ${dtype} to float32`);
  }
}

function decodeInt(bytes: Uint8Array, dtype: SafetensorsDType, what: string, toI32: boolean): Int32Array | Float64Array {
  const size = DTYPE_SIZES[dtype];
  const n = bytes.byteLength / size;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = toI32 ? new Int32Array(n) : new Float64Array(n);
  const range = (v: bigint | number, i: number): void => {
    if (toI32 && (v < -2147483648 || v > 2147483647)) {
      throw new RangeError(`element ${i} = ${v} of ${dtype} does not fit in int32`);
    }
  };
  switch (dtype) {
    case 'BOOL':
      for (let i = 0; i < n; i++) {
        const b = bytes[i];
        if (b > 1) throw new RangeError(`element ${i} of BOOL is ${b}, not 0 or 1`);
        out[i] = b;
      }
      return out;
    case 'U8': for (let i = 0; i < n; i++) out[i] = bytes[i]; return out;
    case 'I8': for (let i = 0; i < n; i++) out[i] = dv.getInt8(i); return out;
    case 'I16': for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true); return out;
    case 'U16': for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true); return out;
    case 'I32': for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true); return out;
    case 'U32': for (let i = 0; i < n; i++) { const v = dv.getUint32(4 * i, true); range(v, i); out[i] = v; } return out;
    case 'I64':
      for (let i = 0; i < n; i++) {
        const lo = dv.getUint32(8 * i, true);
        const hi = dv.getInt32(8 * i + 4, true);
        // Fast path: the value fits in int32 iff hi is the sign extension of lo.
        if ((hi === 0 && lo < 0x80000000) || (hi === -1 && lo >= 0x80000000)) out[i] = lo | 0;
        else {
          const v = dv.getBigInt64(8 * i, true);
          range(v, i);
          out[i] = Number(v);
        }
      }
      return out;
    case 'U64':
      for (let i = 0; i < n; i++) { const v = dv.getBigUint64(8 * i, true); range(v, i); out[i] = Number(v); }
      return out;
    default:
      throw new LpoError(`${what}: cannot decode ${dtype} to integers`);
  }
}

/** Raw bytes of an integer tensor → int32 (throws RangeError when a value does not fit). */
export function decodeInt32(bytes: Uint8Array, dtype: SafetensorsDType, what = 'tensor'): Int32Array {
  return decodeInt(bytes, dtype, what, true) as Int32Array;
}
