// The one route between model folders and models: a model is a config (config.json) plus named tensors
// (safetensors: plain or .fp16, one file or shards). Every loader goes through `loadModel`:
//
//   config → cls.fromConfig under withoutInit (GPU storage allocated, nothing initialised or uploaded)
//          → Module.loadStateDict (strict: every parameter written, every file key used, under the key names
//            the model's modules declare) → the model, or, when anything fails, the model disposed.
//
// The weights file is opened before the model is built, so a corrupt file fails without taking GPU memory.
// Importing this module links it into nn (linkModelStore), which gives every model class its
// `fromPretrained(dir)` / `savePretrained(dir)` without nn importing io.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileFormatError, LpoError } from '../errors.js';
import { DeviceLostError, GpuOutOfMemoryError, LimitError } from '../gpu/errors.js';
import { withoutInit } from '../nn/init.js';
import { StateDictError } from '../nn/state_dict.js';
import type { LoadOptions, LoadReport, Module } from '../nn/module.js';
import { linkModelStore, type ConfigurableModel, type ModelClass, type PretrainedOptions, type SaveOptions } from '../nn/pretrained.js';
import type { StateDictReader } from '../nn/state_dict.js';
import type { Tensor } from '../tensor/tensor.js';
import { writeSafetensors, type TensorToWrite } from './safetensors.js';
import { DiffusersError, openWeights, readJson, requireWeights } from './weights.js';

export type { ModelClass, PretrainedOptions, SaveOptions, ConfigurableModel } from '../nn/pretrained.js';

export interface FromPretrainedOptions extends PretrainedOptions {
  /** The config object to use instead of the folder's config.json (needed when `source` is a lone weights file). */
  config?: Record<string, unknown>;
}

/** The name a config gives its class: diffusers' `_class_name`, else transformers' `architectures[0]`. */
function configClassName(config: Record<string, unknown>): string | null {
  if (typeof config._class_name === 'string') return config._class_name;
  const a = config.architectures;
  return Array.isArray(a) && typeof a[0] === 'string' ? a[0] : null;
}

/**
 * Builds `cls` from `config` and loads every parameter from `weights` strictly (StateDictError naming each
 * missing, unexpected and wrong-shaped key). The model is disposed when the load fails. The caller keeps
 * (and closes) `weights`.
 */
export async function loadModel<M extends Module>(cls: ModelClass<M>, config: Record<string, unknown>, weights: StateDictReader): Promise<M> {
  const model = withoutInit(() => cls.fromConfig(config));
  try {
    await model.loadStateDict(weights);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** Counts of repeated blocks: a config asking for more than any real model has is refused before anything is built. */
const MAX_REPEATS = 1000;
const REPEAT_KEYS = /^(num_hidden_layers|num_layers|layers_per_block|transformer_layers_per_block|num_attention_heads|attention_head_dim|num_blocks)$/;

/** Refuses absurd block counts (a corrupt config would otherwise build modules for minutes) with the file named. */
function checkRepeats(config: Record<string, unknown>, file: string): void {
  for (const [k, v] of Object.entries(config)) {
    if (!REPEAT_KEYS.test(k)) continue;
    for (const x of Array.isArray(v) ? v : [v]) {
      if (typeof x === 'number' && x > MAX_REPEATS) throw new DiffusersError(file, `${k} = ${x} is more than any real model has (at most ${MAX_REPEATS})`);
    }
  }
}

/**
 * A model from a folder (config.json + weights found by name: diffusion_pytorch_model, model or weights;
 * .fp16 variants; shards) or from one weights file (.safetensors or .safetensors.index.json; its config is
 * `opts.config` or the config.json beside it). A config naming another class is refused.
 */
export async function fromPretrained<M extends Module>(cls: ModelClass<M>, source: string, opts: FromPretrainedOptions = {}): Promise<M> {
  const where = opts.subfolder ? path.join(source, opts.subfolder) : source;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(where);
  } catch {
    throw new DiffusersError(where, `${cls.className}.fromPretrained: no such folder or file`);
  }
  const dir = stat.isDirectory() ? where : path.dirname(where);
  const weightsPath = stat.isDirectory() ? requireWeights(where, opts.preferFp16).path : where;
  const configPath = path.join(dir, 'config.json');
  const config = opts.config ?? readJson(configPath);
  const named = configClassName(config);
  if (named !== null && named !== cls.className) {
    throw new DiffusersError(opts.config ? weightsPath : configPath, `the config is for ${named}, not ${cls.className}`);
  }
  const cfgFile = opts.config ? weightsPath : configPath;
  checkRepeats(config, cfgFile);
  const weights = await openWeights(weightsPath);
  try {
    return await loadModel(cls, config, weights);
  } catch (e) {
    // A config the model class cannot build from (a wrong type, an unsupported value) names its file; file,
    // state-dict and device errors pass as they are.
    if (e instanceof LpoError && !(e instanceof FileFormatError) && !(e instanceof StateDictError) && !(e instanceof DeviceLostError) && !(e instanceof GpuOutOfMemoryError) && !(e instanceof LimitError)) {
      throw new DiffusersError(cfgFile, `not a valid ${cls.className} config: ${e.message}`);
    }
    throw e;
  } finally {
    await weights.close();
  }
}

/**
 * Loads a named-tensor file (.safetensors or a shard index) into an existing module through Module.loadStateDict:
 * strict by default (every parameter present, every key used, same shapes), under the module's declared key names.
 */
export async function loadWeights(module: Module, file: string, opts: LoadOptions = {}): Promise<LoadReport> {
  const weights = await openWeights(file);
  try {
    return await module.loadStateDict(weights, opts);
  } finally {
    await weights.close();
  }
}

/**
 * Writes named tensors (a module's parameters, or any name → tensor map) to one .safetensors file, F32 or F16.
 * Values pass through host memory one file at a time.
 */
export async function saveWeights(
  source: Module | ReadonlyMap<string, Tensor>,
  file: string,
  opts: { dtype?: 'F32' | 'F16'; metadata?: Record<string, string> } = {},
): Promise<void> {
  const tensors = source instanceof Map ? source : (source as Module).stateDict();
  const out: Record<string, TensorToWrite> = {};
  for (const [k, t] of tensors) out[k] = { dtype: opts.dtype ?? 'F32', shape: t.shape, data: await t.toArray() };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await writeSafetensors(file, out, { format: 'pt', ...opts.metadata });
}

/**
 * Writes a model as a folder that fromPretrained reads back: config.json (model.toConfig()) and
 * `<weightsName>[.fp16].safetensors` (diffusion_pytorch_model unless the class says otherwise).
 */
export async function savePretrained(model: ConfigurableModel, dir: string, opts: SaveOptions = {}): Promise<void> {
  const cls = model.constructor as Partial<ModelClass>;
  const stem = cls.weightsName ?? 'diffusion_pytorch_model';
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(model.toConfig(), null, 2)}\n`);
  const name = opts.variant === 'fp16' ? `${stem}.fp16.safetensors` : `${stem}.safetensors`;
  await saveWeights(model, path.join(dir, name), { dtype: opts.variant === 'fp16' ? 'F16' : 'F32', metadata: opts.metadata });
}

linkModelStore({ load: fromPretrained, save: savePretrained });
