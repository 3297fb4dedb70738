// The safetensors header (https://github.com/huggingface/safetensors): parsing and strict validation.
//
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON ({name: {dtype, shape, data_offsets}} plus an
// optional "__metadata__": {string: string}), then the data section; offsets are relative to its first byte.
// The header is validated as strictly as the reference (Rust) implementation: known dtypes, integer shapes,
// byte spans that match the shape, and spans that tile the data section from 0 to the end of the file.
import { DTYPE_SIZES, type SafetensorsDType } from './dtypes.js';
import { SafetensorsError } from './error.js';

/** The reference implementation's limit on the header size. */
export const MAX_HEADER_BYTES = 100_000_000;
export const METADATA_KEY = '__metadata__';

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
