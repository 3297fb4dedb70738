// A tiny private safetensors reader for the DDIM/pipeline tests (F32 and I64 only).
// Stand-in until src/io/safetensors.ts lands; values come back as float64 arrays.
import { readFileSync } from 'node:fs';

export interface StTensor { dtype: string; shape: number[]; data: Float64Array }

export function readSafetensors(path: string): Map<string, StTensor> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, StTensor>();
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = h.data_offsets;
    const raw = buf.subarray(8 + n + b, 8 + n + e);
    const ab = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
    let data: Float64Array;
    if (h.dtype === 'F32') data = Float64Array.from(new Float32Array(ab));
    else if (h.dtype === 'I64') data = Float64Array.from(new BigInt64Array(ab), (v) => Number(v));
    else throw new Error(`${path}: ${name}: dtype ${h.dtype} not supported by test/ref/st.ts`);
    out.set(name, { dtype: h.dtype, shape: h.shape, data });
  }
  return out;
}
