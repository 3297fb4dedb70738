// Weights files and JSON configs of model folders: one reader interface over a single .safetensors file and a
// sharded set (`*.safetensors.index.json` + shards), the weights-file lookup of a folder (plain or .fp16 variant),
// and the JSON reader. Every problem names its file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileFormatError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { StateDictReader } from '../nn/state_dict.js';
import { SafetensorsError, SafetensorsFile, type ReadTensorOptions, type TensorInfo } from './safetensors.js';

/** A model folder, its config or a weights index is missing or malformed. */
export class DiffusersError extends FileFormatError {}

/** What both a single file and a set of shards offer. */
export interface WeightsReader extends StateDictReader {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  keys(): string[];
  has(key: string): boolean;
  info(key: string): TensorInfo;
  readF32(key: string): Promise<Float32Array>;
  readInt32(key: string): Promise<Int32Array>;
  readTensor(key: string, opts?: ReadTensorOptions): Promise<Tensor>;
  close(): Promise<void>;
}

/** Weights split over several .safetensors files listed by a `*.safetensors.index.json` (`weight_map`). */
export class ShardedSafetensors implements WeightsReader {
  private constructor(
    readonly path: string,
    private readonly files: SafetensorsFile[],
    private readonly owner: Map<string, SafetensorsFile>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  static async open(indexPath: string): Promise<ShardedSafetensors> {
    const index = readJson(indexPath) as { weight_map?: Record<string, string>; metadata?: Record<string, unknown> };
    const map = index.weight_map;
    if (!map || typeof map !== 'object') throw new DiffusersError(indexPath, 'no "weight_map" object');
    const dir = path.dirname(indexPath);
    const byName = new Map<string, SafetensorsFile>();
    const owner = new Map<string, SafetensorsFile>();
    try {
      for (const [key, shard] of Object.entries(map)) {
        if (typeof shard !== 'string') throw new DiffusersError(indexPath, `weight_map[${JSON.stringify(key)}] is not a file name`);
        let f = byName.get(shard);
        if (!f) {
          f = await SafetensorsFile.open(path.join(dir, shard));
          byName.set(shard, f);
        }
        if (!f.has(key)) throw new SafetensorsError(f.path, key, `listed in '${indexPath}' but not in this shard`);
        owner.set(key, f);
      }
      for (const f of byName.values()) {
        for (const k of f.keys()) {
          if (owner.get(k) !== f) throw new SafetensorsError(f.path, k, `not listed for this shard in '${indexPath}'`);
        }
      }
    } catch (e) {
      for (const f of byName.values()) f.closeSync();
      throw e;
    }
    const md: Record<string, string> = {};
    for (const [k, v] of Object.entries(index.metadata ?? {})) md[k] = String(v);
    return new ShardedSafetensors(indexPath, [...byName.values()], owner, md);
  }

  keys(): string[] { return [...this.owner.keys()]; }
  has(key: string): boolean { return this.owner.has(key); }
  private file(key: string): SafetensorsFile {
    const f = this.owner.get(key);
    if (!f) throw new SafetensorsError(this.path, key, 'no such tensor in any shard');
    return f;
  }
  info(key: string): TensorInfo { return this.file(key).info(key); }
  readF32(key: string): Promise<Float32Array> { return this.file(key).readF32(key); }
  readInt32(key: string): Promise<Int32Array> { return this.file(key).readInt32(key); }
  readTensor(key: string, opts?: ReadTensorOptions): Promise<Tensor> { return this.file(key).readTensor(key, opts); }
  async close(): Promise<void> { for (const f of this.files) f.closeSync(); }
}

/** Opens a .safetensors file or a sharded `*.safetensors.index.json`. */
export async function openWeights(file: string): Promise<WeightsReader> {
  return file.endsWith('.index.json') ? ShardedSafetensors.open(file) : SafetensorsFile.open(file);
}

/** A JSON object from a file (DiffusersError naming the file when it is missing, invalid or not an object). */
export function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new DiffusersError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new DiffusersError(file, `not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new DiffusersError(file, 'not a JSON object');
  return v as Record<string, unknown>;
}

/** Weights file stems, in the order they are looked for: diffusers', transformers', the reference folder's. */
export const WEIGHT_NAMES = ['diffusion_pytorch_model', 'model', 'weights'];

/** The weights file of a component folder, preferring fp16 variants or not; null when there is none. */
export function findWeights(dir: string, preferFp16 = false): { path: string; variant: 'fp16' | null } | null {
  const order: ('fp16' | null)[] = preferFp16 ? ['fp16', null] : [null, 'fp16'];
  for (const variant of order) {
    for (const base of WEIGHT_NAMES) {
      const stem = variant ? `${base}.${variant}` : base;
      for (const name of [`${stem}.safetensors`, `${stem}.safetensors.index.json`]) {
        const p = path.join(dir, name);
        if (fs.existsSync(p)) return { path: p, variant };
      }
    }
  }
  return null;
}

/** findWeights, or a DiffusersError that says what was looked for (and names a PyTorch pickle found instead). */
export function requireWeights(dir: string, preferFp16 = false): { path: string; variant: 'fp16' | null } {
  const w = findWeights(dir, preferFp16);
  if (w) return w;
  const pickle = fs.readdirSync(dir).find((f) => /\.(bin|ckpt|pt|pth)$/.test(f));
  if (pickle) throw new DiffusersError(dir, `only '${pickle}' (a PyTorch pickle); convert it to .safetensors`);
  throw new DiffusersError(dir, `no weights (looked for ${WEIGHT_NAMES.map((b) => `${b}[.fp16].safetensors`).join(', ')}, or their .index.json)`);
}
