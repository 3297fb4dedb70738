// Diffusers model folders (model_index.json + one subfolder per component) and state-dict key checking.
//
//   <model>/model_index.json
//   <model>/unet/config.json           unet/diffusion_pytorch_model[.fp16].safetensors
//   <model>/text_encoder/config.json   text_encoder/model[.fp16].safetensors
//   <model>/vae/config.json            vae/diffusion_pytorch_model[.fp16].safetensors
//   <model>/tokenizer/                 vocab.json, merges.txt
//   <model>/scheduler/scheduler_config.json
//
// Sharded weights (`*.safetensors.index.json` + shards) are read through one reader with the same interface.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LpoError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { StateDictError, type ShapeMismatch, type StateDictReader, type LoadReport } from '../nn/module.js';
import { SafetensorsError, SafetensorsFile, type ReadTensorOptions, type SafetensorsDType, type TensorInfo } from './safetensors.js';

/** A model folder or one of its files is missing or malformed. */
export class DiffusersError extends LpoError {}

export { StateDictError };

// ---------------------------------------------------------------------------------------------------------------
// Weights readers

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
    if (!map || typeof map !== 'object') throw new DiffusersError(`'${indexPath}': no "weight_map" object`);
    const dir = path.dirname(indexPath);
    const byName = new Map<string, SafetensorsFile>();
    const owner = new Map<string, SafetensorsFile>();
    try {
      for (const [key, shard] of Object.entries(map)) {
        if (typeof shard !== 'string') throw new DiffusersError(`'${indexPath}': weight_map[${JSON.stringify(key)}] is not a file name`);
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

// ---------------------------------------------------------------------------------------------------------------
// Key mapping and checking

export interface KeyMapOptions {
  /** File key → model key (e.g. vaeLegacyRename). Applied before `ignore`. */
  rename?: (key: string) => string;
  /** Model keys (after rename) accepted and not loaded. Default: DEFAULT_IGNORE. */
  ignore?: readonly RegExp[];
  /** Accept a [o, i, 1, 1] tensor for an expected [o, i] (a 1×1 conv stored for a Linear, as old VAEs do). */
  squeeze1x1?: boolean;
}

/** Buffers that checkpoints carry and models rebuild: CLIP's position_ids (older transformers saves it). */
export const DEFAULT_IGNORE: readonly RegExp[] = [/(^|\.)embeddings\.position_ids$/];

const LEGACY_ATTENTION = /^(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$/;
const LEGACY_NAMES: Record<string, string> = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' };

/** Old diffusers VAE attention names (query/key/value/proj_attn) → current ones (to_q/to_k/to_v/to_out.0). */
export function vaeLegacyRename(key: string): string {
  const m = LEGACY_ATTENTION.exec(key);
  return m ? `${m[1]}.${LEGACY_NAMES[m[2]]}.${m[3]}` : key;
}

export interface StateDictReport {
  missing: string[];
  unexpected: string[];
  wrongShape: ShapeMismatch[];
  /** File keys accepted and not loaded (DEFAULT_IGNORE or opts.ignore). */
  ignored: string[];
}

/**
 * A read-only view of a weights file under model key names: renamed, ignored keys hidden, and 1×1 convs
 * presented as Linear weights where the model expects that. Implements nn's StateDictReader, so
 * `module.loadStateDict(new MappedWeights(file, opts, expected))` loads through it.
 */
export class MappedWeights implements StateDictReader {
  private readonly toSource = new Map<string, string>();
  private readonly shapes = new Map<string, readonly number[]>();
  /** Source keys dropped by `ignore`. */
  readonly ignored: string[] = [];
  /** Source keys whose new name another key already had (reported as unexpected). */
  readonly collisions: string[] = [];

  constructor(readonly source: WeightsReader, opts: KeyMapOptions = {}, expected?: ReadonlyMap<string, readonly number[]>) {
    const rename = opts.rename ?? ((k: string) => k);
    const ignore = opts.ignore ?? DEFAULT_IGNORE;
    for (const src of source.keys()) {
      const k = rename(src);
      if (ignore.some((re) => re.test(k)) && !expected?.has(k)) {
        this.ignored.push(src);
        continue;
      }
      if (this.toSource.has(k)) {
        this.collisions.push(src);
        continue;
      }
      this.toSource.set(k, src);
      let shape = source.info(src).shape;
      const want = expected?.get(k);
      if (opts.squeeze1x1 && want && want.length === 2 && shape.length === 4 && shape[2] === 1 && shape[3] === 1 && shape[0] === want[0] && shape[1] === want[1]) {
        shape = want;
      }
      this.shapes.set(k, shape);
    }
  }

  get path(): string { return this.source.path; }
  keys(): string[] { return [...this.toSource.keys()]; }
  has(key: string): boolean { return this.toSource.has(key); }
  sourceKey(key: string): string {
    const s = this.toSource.get(key);
    if (s === undefined) throw new SafetensorsError(this.source.path, key, 'no such tensor (after renaming)');
    return s;
  }
  info(key: string): { shape: readonly number[]; dtype: SafetensorsDType } {
    return { shape: this.shapes.get(key) ?? this.source.info(this.sourceKey(key)).shape, dtype: this.source.info(this.sourceKey(key)).dtype };
  }
  readF32(key: string): Promise<Float32Array> { return this.source.readF32(this.sourceKey(key)); }
  readTensor(key: string, opts: ReadTensorOptions = {}): Promise<Tensor> {
    return this.source.readTensor(this.sourceKey(key), { shape: this.shapes.get(key), ...opts });
  }
}

/**
 * Compares a file's tensors with the keys and shapes a model expects (after renaming and ignoring).
 * Throws nothing; see assertStateDict.
 */
export function checkStateDict(
  expected: ReadonlyMap<string, readonly number[]>,
  file: WeightsReader,
  opts: KeyMapOptions = {},
): StateDictReport {
  const view = new MappedWeights(file, opts, expected);
  const missing = [...expected.keys()].filter((k) => !view.has(k));
  const unexpected = view.keys().filter((k) => !expected.has(k));
  for (const c of view.collisions) unexpected.push(`${c} (duplicate of ${opts.rename ? opts.rename(c) : c})`);
  const wrongShape: ShapeMismatch[] = [];
  for (const k of view.keys()) {
    const want = expected.get(k);
    if (!want) continue;
    const got = view.info(k).shape;
    if (got.length !== want.length || got.some((d, i) => d !== want[i])) wrongShape.push({ key: k, expected: [...want], got: [...got] });
  }
  return { missing, unexpected, wrongShape, ignored: view.ignored };
}

/** checkStateDict, throwing a StateDictError that names every missing, unexpected and wrong-shaped key. */
export function assertStateDict(
  expected: ReadonlyMap<string, readonly number[]>,
  file: WeightsReader,
  opts: KeyMapOptions = {},
): StateDictReport {
  const r = checkStateDict(expected, file, opts);
  if (r.missing.length || r.unexpected.length || r.wrongShape.length) {
    throw new StateDictError(r.missing, r.unexpected, r.wrongShape, `weights '${file.path}'`);
  }
  return r;
}

/** What loadStateDict needs of a model: nn's Module has both methods. */
export interface Loadable {
  stateDict(): Map<string, { readonly shape: readonly number[] }>;
  loadStateDict(source: StateDictReader, opts?: { strict?: boolean }): Promise<LoadReport>;
}

/**
 * Loads a weights file into a model by key name: every model parameter must be in the file and every file key
 * must be used (or ignored), with equal shapes; otherwise a StateDictError lists all the problems by name.
 */
export async function loadStateDict(model: Loadable, file: WeightsReader, opts: KeyMapOptions = {}): Promise<LoadReport & { ignored: string[] }> {
  const expected = new Map([...model.stateDict()].map(([k, t]) => [k, t.shape] as const));
  const report = assertStateDict(expected, file, opts);
  const r = await model.loadStateDict(new MappedWeights(file, opts, expected));
  return { ...r, ignored: [...new Set([...report.ignored, ...r.ignored])] };
}

/** Key options for a diffusers component: the VAE accepts legacy attention names and 1×1-conv attention weights. */
export function keyOptionsFor(component: string): KeyMapOptions {
  if (component === 'vae') return { rename: vaeLegacyRename, squeeze1x1: true };
  return {};
}

// ---------------------------------------------------------------------------------------------------------------
// Model folders

export interface OpenModelOptions {
  /** Use the `.fp16.safetensors` variants when present (default false: full precision first, fp16 as fallback). */
  preferFp16?: boolean;
  /** Components to open (default: all found). */
  components?: readonly string[];
  /** Open the weights files (default true); false only locates them. */
  openWeights?: boolean;
}

export interface Component {
  readonly name: string;
  readonly dir: string;
  /** `_class_name` from model_index.json or the config (e.g. UNet2DConditionModel). */
  readonly className: string | null;
  readonly configPath: string | null;
  readonly config: Record<string, unknown> | null;
  readonly weightsPath: string | null;
  readonly variant: 'fp16' | null;
  readonly weights: WeightsReader | null;
  /** Other files of the folder (tokenizer's vocab.json, merges.txt, …). */
  readonly files: string[];
}

export interface DiffusersModel {
  readonly dir: string;
  readonly index: Record<string, unknown> | null;
  readonly components: Map<string, Component>;
  /** The component, or a DiffusersError naming what the folder has. */
  get(name: string): Component;
  close(): Promise<void>;
}

const WEIGHT_NAMES = ['diffusion_pytorch_model', 'model', 'weights'];
const CONFIG_NAMES = ['config.json', 'scheduler_config.json', 'preprocessor_config.json', 'tokenizer_config.json'];

/**
 * A model from a diffusers/transformers component folder: `config.json` → `build(config)`, then a strict
 * load by key name of its weights (findWeights: plain or .fp16, single file or shards). The model is
 * disposed when the load fails, so a bad checkpoint leaks no GPU memory.
 */
export async function loadComponent<M extends Loadable & { dispose(): void }>(
  what: string,
  folder: string,
  build: (config: Record<string, unknown>) => M,
  opts: { preferFp16?: boolean; keys?: KeyMapOptions } = {},
): Promise<M> {
  const config = readJson(path.join(folder, 'config.json'));
  const w = findWeights(folder, opts.preferFp16);
  if (!w) throw new DiffusersError(`${what}: no weights (.safetensors) in ${folder}`);
  const file = await openWeights(w.path); // a corrupt file fails here, before any GPU memory is taken
  try {
    const model = build(config);
    try {
      await loadStateDict(model, file, opts.keys);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  } finally {
    await file.close();
  }
}

export function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new DiffusersError(`cannot read '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new DiffusersError(`'${file}' is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new DiffusersError(`'${file}' is not a JSON object`);
  return v as Record<string, unknown>;
}

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

function hasPickleOnly(dir: string): string | null {
  for (const f of fs.readdirSync(dir)) if (/\.(bin|ckpt|pt|pth)$/.test(f)) return f;
  return null;
}

/**
 * Reads a diffusers folder: model_index.json (optional) and each component's config and weights
 * (opened, not loaded). Close the result to release the files.
 */
export async function openDiffusersModel(dir: string, opts: OpenModelOptions = {}): Promise<DiffusersModel> {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new DiffusersError(`model folder '${dir}' does not exist`);
  }
  if (!st.isDirectory()) throw new DiffusersError(`'${dir}' is not a folder`);
  const indexPath = path.join(dir, 'model_index.json');
  const index = fs.existsSync(indexPath) ? readJson(indexPath) : null;

  // Components: the index's entries ([library, class]), else every subfolder holding a config or weights.
  const names: { name: string; className: string | null }[] = [];
  if (index) {
    for (const [k, v] of Object.entries(index)) {
      if (k.startsWith('_') || !Array.isArray(v)) continue;
      if (v[0] === null && v[1] === null) continue; // optional component left out (safety_checker: [null, null])
      names.push({ name: k, className: typeof v[1] === 'string' ? v[1] : null });
    }
  } else {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const sub = path.join(dir, e.name);
      const files = fs.readdirSync(sub);
      if (files.some((f) => CONFIG_NAMES.includes(f) || f.endsWith('.safetensors'))) names.push({ name: e.name, className: null });
    }
    if (!names.length) throw new DiffusersError(`'${dir}' has no model_index.json and no component folders (config.json or .safetensors)`);
  }
  const wanted = opts.components ? new Set(opts.components) : null;
  if (wanted) {
    for (const w of wanted) {
      if (!names.some((n) => n.name === w)) throw new DiffusersError(`'${dir}' has no component '${w}' (it has ${names.map((n) => n.name).join(', ') || 'none'})`);
    }
  }

  const components = new Map<string, Component>();
  const opened: WeightsReader[] = [];
  try {
    for (const { name, className } of names) {
      if (wanted && !wanted.has(name)) continue;
      const cdir = path.join(dir, name);
      if (!fs.existsSync(cdir) || !fs.statSync(cdir).isDirectory()) {
        throw new DiffusersError(`component '${name}'${index ? ' (listed in model_index.json)' : ''}: folder '${cdir}' is missing`);
      }
      const configName = CONFIG_NAMES.find((c) => fs.existsSync(path.join(cdir, c))) ?? null;
      const configPath = configName ? path.join(cdir, configName) : null;
      const config = configPath ? readJson(configPath) : null;
      const w = findWeights(cdir, opts.preferFp16);
      const isModel = /Model|Autoencoder|UNet|Transformer/i.test(className ?? '') || ['unet', 'text_encoder', 'text_encoder_2', 'vae'].includes(name);
      if (!w && isModel) {
        const pickle = hasPickleOnly(cdir);
        if (pickle) throw new DiffusersError(`component '${name}': only '${pickle}' (PyTorch pickle) in '${cdir}'; convert it to .safetensors`);
        throw new DiffusersError(`component '${name}': no weights in '${cdir}' (looked for ${WEIGHT_NAMES.map((b) => `${b}[.fp16].safetensors`).join(', ')})`);
      }
      let weights: WeightsReader | null = null;
      if (w && opts.openWeights !== false) {
        weights = await openWeights(w.path);
        opened.push(weights);
      }
      const files = fs.readdirSync(cdir).filter((f) => path.join(cdir, f) !== configPath && path.join(cdir, f) !== w?.path).sort();
      components.set(name, {
        name,
        dir: cdir,
        className: className ?? (typeof config?._class_name === 'string' ? config._class_name : null),
        configPath,
        config,
        weightsPath: w?.path ?? null,
        variant: w?.variant ?? null,
        weights,
        files,
      });
    }
  } catch (e) {
    for (const f of opened) await f.close();
    throw e;
  }

  return {
    dir,
    index,
    components,
    get(name: string): Component {
      const c = components.get(name);
      if (!c) throw new DiffusersError(`'${dir}' has no component '${name}' (it has ${[...components.keys()].join(', ') || 'none'})`);
      return c;
    },
    async close(): Promise<void> {
      for (const f of opened) await f.close();
    },
  };
}
