// The dtype table of the safetensors format and the float/integer classes the reader converts from.

/** The dtypes of the format (safetensors 0.4). Only some can be decoded to numbers here. */
export const DTYPE_SIZES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
} as const;
export type SafetensorsDType = keyof typeof DTYPE_SIZES;

export const FLOAT_DTYPES = new Set<SafetensorsDType>(['F16', 'BF16', 'F32', 'F64']);
export const INT_DTYPES = new Set<SafetensorsDType>(['BOOL', 'U8', 'I8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64']);
