// Golden tensors for the DDIM/pipeline tests as float64 arrays, read with src/io/safetensors.ts.
import { SafetensorsFile } from '../../src/io/safetensors.js';

export interface StTensor { dtype: string; shape: number[]; data: Float64Array }

export function readSafetensors(path: string): Map<string, StTensor> {
  const f = SafetensorsFile.openSync(path);
  try {
    const out = new Map<string, StTensor>();
    for (const key of f.keys()) {
      const t = f.readSync(key);
      out.set(key, { dtype: t.dtype, shape: t.shape, data: Float64Array.from(t.data) });
    }
    return out;
  } finally {
    f.closeSync();
  }
}
