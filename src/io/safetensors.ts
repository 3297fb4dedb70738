// safetensors reader and writer (https://github.com/huggingface/safetensors).
//
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON ({name: {dtype, shape, data_offsets}} plus an
// optional "__metadata__": {string: string}), then the data section; offsets are relative to its first byte.
// The header is validated as strictly as the reference (Rust) implementation: known dtypes, integer shapes,
// byte spans that match the shape, and spans that tile the data section from 0 to the end of the file.
//
// Files are read tensor by tensor through a file descriptor (positioned reads), so a multi-GB checkpoint never
// has to be held in memory at once.
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { LpoError } from '../gpu/errors.js';
import { gpu } from '../gpu/runtime.js';
import { Tensor, type DType } from '../tensor/tensor.js';
import { floatsToHalf } from '../tensor/half.js';

/** A header, a span or a value that breaks the format. Names the file and, where there is one, the tensor. */
export class SafetensorsError extends LpoError {
  constructor(readonly file: string, readonly key: string | null, readonly detail: string) {
    super(`safetensors file '${file}'${key === null ? '' : `, tensor ${JSON.stringify(key)}`}: ${detail}`);
  }
}

/** The dtypes of the format (safetensors 0.4). Only some can be decoded to numbers here. */
export const DTYPE_SIZES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
} as const;
export type SafetensorsDType = keyof typeof DTYPE_SIZES;

const FLOAT_DTYPES = new Set<SafetensorsDType>(['F16', 'BF16', 'F32', 'F64']);
const INT_DTYPES = new Set<SafetensorsDType>(['BOOL', 'U8', 'I8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64']);

/** The reference implementation's limit on the header size. */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

export interface TensorInfo {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Bytes of data (numel × dtype size). */
  readonly byteLength: number;
  /** [begin, end) relative to the start of the data section. */
  readonly dataOffsets: readonly [number, number];
}

export interface SafetensorsHeader {
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Bytes the data section must have (the end of the last span). */
  readonly dataBytes: number;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function fmtShape(shape: readonly unknown[]): string {
  return `[${shape.map((d) => JSON.stringify(d)).join(', ')}]`;
}

/**
 * Parses and validates a header. `headerBytes` are the N JSON bytes; `fileBytes` the size of the whole file
 * (8 + N + data). Throws SafetensorsError on the first violation.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileBytes: number, file = '<memory>'): SafetensorsHeader {
  const fail = (key: string | null, detail: string): never => {
    throw new SafetensorsError(file, key, detail);
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail(null, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail(null, `header must be a JSON object starting with '{' (starts with ${JSON.stringify(text.slice(0, 16))})`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(null, `header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(json)) return fail(null, 'header JSON is not an object');
  const dup = findDuplicateTopLevelKey(text);
  if (dup !== null) fail(dup, 'appears twice in the header');

  let metadata: Record<string, string> = {};
  const raw = json[METADATA_KEY];
  if (raw !== undefined && raw !== null) {
    if (!isPlainObject(raw)) fail(METADATA_KEY, `must be an object of string → string, got ${Array.isArray(raw) ? 'an array' : typeof raw}`);
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
      if (typeof v !== 'string') fail(METADATA_KEY, `entry ${JSON.stringify(k)} must be a string, got ${v === null ? 'null' : typeof v}`);
    }
    metadata = { ...(raw as Record<string, string>) };
  }

  const entries: [string, TensorInfo][] = [];
  for (const [key, value] of Object.entries(json)) {
    if (key === METADATA_KEY) continue;
    if (!isPlainObject(value)) fail(key, 'entry must be an object {dtype, shape, data_offsets}');
    const v = value as Record<string, unknown>;
    const dtype = v.dtype;
    if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(DTYPE_SIZES, dtype)) {
      fail(key, `unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_SIZES).join(', ')})`);
    }
    const shape = v.shape;
    if (!Array.isArray(shape)) return fail(key, `shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    let n = 1;
    for (const d of shape) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        fail(key, `shape ${fmtShape(shape)} must hold non-negative integers`);
      }
      n *= d as number;
    }
    if (!Number.isSafeInteger(n)) fail(key, `shape ${fmtShape(shape)} has too many elements`);
    const off = v.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
      return fail(key, `data_offsets must be [begin, end] with non-negative integers, got ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    if (end < begin) fail(key, `data_offsets [${begin}, ${end}] end before they begin`);
    const size = DTYPE_SIZES[dtype as SafetensorsDType];
    const need = n * size;
    if (end - begin !== need) {
      fail(key, `data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} ${fmtShape(shape)} needs ${n} × ${size} = ${need}`);
    }
    entries.push([key, { dtype: dtype as SafetensorsDType, shape: Object.freeze([...(shape as number[])]), byteLength: need, dataOffsets: [begin, end] }]);
  }

  // The spans must tile [0, dataBytes) in order, without gaps or overlaps.
  const sorted = [...entries].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let pos = 0;
  let prev: string | null = null;
  for (const [key, info] of sorted) {
    const [begin, end] = info.dataOffsets;
    if (begin > pos) {
      fail(key, `data_offsets [${begin}, ${end}] leave a gap: bytes [${pos}, ${begin}) of the data section belong to no tensor${prev === null ? '' : ` (previous tensor ${JSON.stringify(prev)} ends at ${pos})`}`);
    }
    if (begin < pos) {
      fail(key, `data_offsets [${begin}, ${end}] overlap tensor ${JSON.stringify(prev)}, which ends at ${pos}`);
    }
    pos = end;
    prev = key;
  }
  const headerLen = headerBytes.byteLength;
  const expected = 8 + headerLen + pos;
  if (fileBytes < expected) {
    fail(prev, `file is truncated: the data section needs ${pos} bytes (file size ${expected}) but the file has ${fileBytes} bytes`);
  }
  if (fileBytes > expected) {
    fail(null, `${fileBytes - expected} trailing bytes after the data section (tensors end at byte ${expected} of ${fileBytes})`);
  }
  // keys() lists the tensors in data order.
  return { tensors: new Map(sorted), metadata: Object.freeze(metadata), dataBytes: pos };
}

/**
 * Finds a key that appears twice at the top level of a JSON object text (JSON.parse keeps the last silently).
 * Assumes `text` already parsed as JSON.
 */
function findDuplicateTopLevelKey(text: string): string | null {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const k = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(k)) return k;
        seen.add(k);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

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

// ---------------------------------------------------------------------------------------------------------------
// Reading

const readAsync = promisify(fs.read);
const MAX_READ = 0x40000000; // 1 GiB per read call (fs.read takes at most 2 GiB − 1)

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

function readFully(fd: number, into: Uint8Array, position: number, file: string, key: string | null = null): void {
  let done = 0;
  while (done < into.byteLength) {
    const len = Math.min(MAX_READ, into.byteLength - done);
    const n = fs.readSync(fd, into, done, len, position + done);
    if (n === 0) throw new SafetensorsError(file, key, `file ended at byte ${position + done} while reading`);
    done += n;
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

// ---------------------------------------------------------------------------------------------------------------
// Writing

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
