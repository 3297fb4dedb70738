// Writing .safetensors files: header planning (Python library order), in-memory serialisation, streamed writes.
import * as fs from 'node:fs';
import { DTYPE_SIZES } from './dtypes.js';
import { encodeTensor, type TensorToWrite } from './encode.js';
import { SafetensorsError } from './error.js';
import { MAX_READ } from './fd.js';
import { METADATA_KEY } from './header.js';

/** The header bytes (JSON padded with spaces to a multiple of 8) and the order of the tensors in the data. */
function planHeader(tensors: Record<string, TensorToWrite>, metadata: Record<string, string> | undefined, file: string): { header: Uint8Array; order: string[] } {
  // As the Python library does: larger dtypes first (alignment), then by name.
  const order = Object.keys(tensors).filter((k) => k !== METADATA_KEY);
  if (order.length !== Object.keys(tensors).length) throw new SafetensorsError(file, METADATA_KEY, 'is reserved for metadata, not a tensor name');
  order.sort((a, b) => DTYPE_SIZES[tensors[b].dtype] - DTYPE_SIZES[tensors[a].dtype] || (a < b ? -1 : a > b ? 1 : 0));
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(file, METADATA_KEY, `entry ${JSON.stringify(k)} must be a string`);
    }
    obj[METADATA_KEY] = metadata;
  }
  let pos = 0;
  for (const k of order) {
    const t = tensors[k];
    if (!Object.prototype.hasOwnProperty.call(DTYPE_SIZES, t.dtype)) throw new SafetensorsError(file, k, `cannot write dtype ${t.dtype}`);
    const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[t.dtype];
    obj[k] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [pos, pos + bytes] };
    pos += bytes;
  }
  let json = JSON.stringify(obj);
  const len = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (len % 8)) % 8);
  return { header: new TextEncoder().encode(json), order };
}

/** Serialises tensors to one in-memory buffer (small files, tests). */
export function serializeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const { header, order } = planHeader(tensors, metadata, '<memory>');
  const parts = order.map((k) => encodeTensor(tensors[k], k, '<memory>'));
  const total = 8 + header.byteLength + parts.reduce((a, p) => a + p.byteLength, 0);
  const out = new Uint8Array(total);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  out.set(header, 8);
  let pos = 8 + header.byteLength;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.byteLength;
  }
  return out;
}

/** Writes a .safetensors file tensor by tensor (each is encoded, written, then dropped). */
export async function writeSafetensors(path: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Promise<void> {
  const { header, order } = planHeader(tensors, metadata, path);
  const fh = await fs.promises.open(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.byteLength));
    let pos = 0;
    const put = async (b: Uint8Array): Promise<void> => {
      let done = 0;
      while (done < b.byteLength) {
        const { bytesWritten } = await fh.write(b, done, Math.min(MAX_READ, b.byteLength - done), pos + done);
        done += bytesWritten;
      }
      pos += b.byteLength;
    };
    await put(len);
    await put(header);
    for (const k of order) await put(encodeTensor(tensors[k], k, path));
  } finally {
    await fh.close();
  }
}

export function writeSafetensorsSync(path: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  const { header, order } = planHeader(tensors, metadata, path);
  const fd = fs.openSync(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.byteLength));
    fs.writeSync(fd, len);
    fs.writeSync(fd, header);
    for (const k of order) {
      const b = encodeTensor(tensors[k], k, path);
      let done = 0;
      while (done < b.byteLength) done += fs.writeSync(fd, b, done, Math.min(MAX_READ, b.byteLength - done));
    }
  } finally {
    fs.closeSync(fd);
  }
}
