// SafetensorsFile: an open file whose tensors are read to the host or uploaded to the GPU on demand.
// Files are read tensor by tensor through a file descriptor (positioned reads), so a multi-GB checkpoint never
// has to be held in memory at once.
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { gpu } from '../../gpu/runtime.js';
import { Tensor, type DType } from '../../tensor/tensor.js';
import { floatsToHalf } from '../../tensor/half.js';
import { decodeF32, decodeInt32 } from './decode.js';
import { FLOAT_DTYPES, INT_DTYPES, type SafetensorsDType } from './dtypes.js';
import { SafetensorsError } from './error.js';
import { MAX_READ, readFully } from './fd.js';
import { MAX_HEADER_BYTES, parseSafetensorsHeader, type SafetensorsHeader, type TensorInfo } from './header.js';

const readAsync = promisify(fs.read);

/** A tensor on the host: the file's dtype, its shape, and values decoded to f32 (floats) or i32 (integers). */
export interface HostTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface ReadTensorOptions {
  /** GPU dtype. Default: 'f32' for float dtypes, 'i32' for integer ones. 'f16' from an F16 file copies the bits. */
  dtype?: DType;
  /** Shape to give the tensor instead of the file's (same element count), e.g. [o, i] for a [o, i, 1, 1] conv. */
  shape?: readonly number[];
}

/** An open .safetensors file: header parsed and validated, tensors read on demand by positioned reads. */
export class SafetensorsFile {
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    readonly fileBytes: number,
    readonly headerBytes: number,
    private readonly header: SafetensorsHeader,
  ) {
    this.fd = fd;
  }

  /** Opens and validates `path`. Throws SafetensorsError for a malformed file (the descriptor is closed). */
  static async open(path: string): Promise<SafetensorsFile> {
    return SafetensorsFile.openSync(path);
  }

  static openSync(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(path, null, `cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new SafetensorsError(path, null, 'not a regular file');
      const size = st.size;
      if (size < 8) throw new SafetensorsError(path, null, `file has ${size} bytes, fewer than the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      readFully(fd, lenBuf, 0, path);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new SafetensorsError(path, null, `header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
      }
      const headerLen = Number(n);
      if (8 + headerLen > size) {
        throw new SafetensorsError(path, null, `header length ${headerLen} runs past the end of the file (${size} bytes)`);
      }
      const hb = Buffer.alloc(headerLen);
      readFully(fd, hb, 8, path);
      const header = parseSafetensorsHeader(hb, size, path);
      return new SafetensorsFile(path, fd, size, headerLen, header);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  get metadata(): Readonly<Record<string, string>> { return this.header.metadata; }
  /** Byte position of the data section in the file. */
  get dataStart(): number { return 8 + this.headerBytes; }
  get size(): number { return this.header.tensors.size; }

  /** Tensor names in data order (by offset). */
  keys(): string[] { return [...this.header.tensors.keys()]; }
  has(key: string): boolean { return this.header.tensors.has(key); }

  info(key: string): TensorInfo {
    const i = this.header.tensors.get(key);
    if (!i) throw new SafetensorsError(this.path, key, `no such tensor (the file has ${this.header.tensors.size})`);
    return i;
  }

  /** Every tensor's info, in data order. */
  entries(): [string, TensorInfo][] { return [...this.header.tensors]; }

  /** The raw little-endian bytes of a tensor (a fresh, 8-byte aligned buffer). */
  async readBytes(key: string): Promise<Uint8Array> {
    const info = this.info(key);
    const out = new Uint8Array(new ArrayBuffer(info.byteLength));
    let done = 0;
    const fd = this.handle();
    while (done < out.byteLength) {
      const len = Math.min(MAX_READ, out.byteLength - done);
      const { bytesRead } = await readAsync(fd, out, done, len, this.dataStart + info.dataOffsets[0] + done);
      if (bytesRead === 0) throw new SafetensorsError(this.path, key, 'file ended while reading (was it truncated after opening?)');
      done += bytesRead;
    }
    return out;
  }

  readBytesSync(key: string): Uint8Array {
    const info = this.info(key);
    const out = new Uint8Array(new ArrayBuffer(info.byteLength));
    readFully(this.handle(), out, this.dataStart + info.dataOffsets[0], this.path, key);
    return out;
  }

  /** Values as float32 (F32 as is; F16/BF16/F64 converted; integer dtypes converted). */
  async readF32(key: string): Promise<Float32Array> {
    return this.toF32(key, await this.readBytes(key));
  }

  readF32Sync(key: string): Float32Array {
    return this.toF32(key, this.readBytesSync(key));
  }

  /** Integer values as int32 (I64/U64/U32 checked to fit). */
  async readInt32(key: string): Promise<Int32Array> {
    return this.toI32(key, await this.readBytes(key));
  }

  readInt32Sync(key: string): Int32Array {
    return this.toI32(key, this.readBytesSync(key));
  }

  /** Float dtypes → Float32Array, integer dtypes → Int32Array. */
  async read(key: string): Promise<HostTensor> {
    const info = this.info(key);
    const bytes = await this.readBytes(key);
    return { dtype: info.dtype, shape: [...info.shape], data: FLOAT_DTYPES.has(info.dtype) ? this.toF32(key, bytes) : this.toI32(key, bytes) };
  }

  readSync(key: string): HostTensor {
    const info = this.info(key);
    const bytes = this.readBytesSync(key);
    return { dtype: info.dtype, shape: [...info.shape], data: FLOAT_DTYPES.has(info.dtype) ? this.toF32(key, bytes) : this.toI32(key, bytes) };
  }

  /** Reads a tensor and uploads it to the GPU (needs initGpu()). */
  async readTensor(key: string, opts: ReadTensorOptions = {}): Promise<Tensor> {
    const info = this.info(key);
    const target: DType = opts.dtype ?? (FLOAT_DTYPES.has(info.dtype) ? 'f32' : 'i32');
    let shape = info.shape;
    if (opts.shape) {
      const n = opts.shape.reduce((a, b) => a * b, 1);
      const m = info.shape.reduce((a, b) => a * b, 1);
      if (n !== m) throw new SafetensorsError(this.path, key, `cannot load [${info.shape.join(', ')}] as [${opts.shape.join(', ')}]`);
      shape = opts.shape;
    }
    const bytes = await this.readBytes(key);
    let t: Tensor;
    if (target === 'i32') {
      t = Tensor.fromArray(this.toI32(key, bytes), shape, 'i32');
    } else if (target === 'f16' && info.dtype === 'F16') {
      t = Tensor.empty(shape, 'f16', key);
      if (bytes.byteLength) gpu().write(t.buffer, padTo4(bytes));
    } else if (target === 'f16') {
      const f = this.toF32(key, bytes);
      t = Tensor.empty(shape, 'f16', key);
      if (f.length) gpu().write(t.buffer, padTo4(new Uint8Array(floatsToHalf(f).buffer)));
    } else {
      t = Tensor.fromArray(this.toF32(key, bytes), shape, 'f32');
    }
    t.name = key;
    return t;
  }

  async close(): Promise<void> {
    this.closeSync();
  }

  closeSync(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  private handle(): number {
    if (this.fd === null) throw new SafetensorsError(this.path, null, 'file was closed');
    return this.fd;
  }

  private toF32(key: string, bytes: Uint8Array): Float32Array {
    const dtype = this.info(key).dtype;
    if (!FLOAT_DTYPES.has(dtype) && !INT_DTYPES.has(dtype)) {
      throw new SafetensorsError(this.path, key, `cannot convert ${dtype} to float32`);
    }
    try {
      return decodeF32(bytes, dtype, key);
    } catch (e) {
      throw new SafetensorsError(this.path, key, (e as Error).message);
    }
  }

  private toI32(key: string, bytes: Uint8Array): Int32Array {
    const dtype = this.info(key).dtype;
    if (!INT_DTYPES.has(dtype)) throw new SafetensorsError(this.path, key, `is ${dtype}, not an integer dtype`);
    try {
      return decodeInt32(bytes, dtype, key);
    } catch (e) {
      throw new SafetensorsError(this.path, key, (e as Error).message);
    }
  }
}

function padTo4(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength % 4 === 0) return bytes;
  const p = new Uint8Array(bytes.byteLength + (4 - (bytes.byteLength % 4)));
  p.set(bytes);
  return p;
}

/** Reads every tensor of a (small) file to the host. */
export function readSafetensorsSync(path: string): { metadata: Record<string, string>; tensors: Record<string, HostTensor> } {
  const f = SafetensorsFile.openSync(path);
  try {
    const tensors: Record<string, HostTensor> = {};
    for (const k of f.keys()) tensors[k] = f.readSync(k);
    return { metadata: { ...f.metadata }, tensors };
  } finally {
    f.closeSync();
  }
}

export async function readSafetensors(path: string): Promise<{ metadata: Record<string, string>; tensors: Record<string, HostTensor> }> {
  const f = await SafetensorsFile.open(path);
  try {
    const tensors: Record<string, HostTensor> = {};
    for (const k of f.keys()) tensors[k] = await f.read(k);
    return { metadata: { ...f.metadata }, tensors };
  } finally {
    await f.close();
  }
}
