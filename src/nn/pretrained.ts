// What a model class declares so that it can be loaded from a folder and saved as one, and the class-style
// entry points (diffusers' `UNet2DConditionModel.fromPretrained(dir)`, `model.savePretrained(dir)`).
//
// nn touches no files and imports nothing from io. The folder work (config.json, plain/.fp16/sharded
// safetensors, strict load, dispose on failure) is io's (src/io/pretrained.ts), which links itself here when it
// is imported; the package entry imports it, so users never see the link. This is the inversion: nn states
// the interface (ModelClass, ModelStore), io implements it, and nothing in nn depends on io.
import { LpoError } from '../errors.js';
import { Module } from './module.js';

export interface PretrainedOptions {
  /** Use the `.fp16` weights when a folder has both (default: full precision first, fp16 as the fallback). */
  preferFp16?: boolean;
  /** A component folder inside the given one (diffusers' `subfolder`, e.g. 'unet' of a pipeline folder). */
  subfolder?: string;
}

export interface SaveOptions {
  /** 'fp16' writes F16 weights as `<name>.fp16.safetensors` (diffusers' variant); default F32 `<name>.safetensors`. */
  variant?: 'fp16';
  /** Extra `__metadata__` strings for the weights file. */
  metadata?: Record<string, string>;
}

/** A model that can be written as a folder: its config.json object (parsed back by its class's fromConfig). */
export interface ConfigurableModel extends Module {
  toConfig(): Record<string, unknown>;
}

/**
 * What a loader needs of a model class: its name (config.json's `_class_name`), how to build it from a config,
 * and the stem of its weights file. The key names it reads are declared by its modules (Module.checkpointKeys).
 * Any object of this shape works, e.g.
 * `{ className: 'UNet2DConditionModel', fromConfig: (c) => new UNet2DConditionModel(c, { upBlocks: false }) }`.
 */
export interface ModelClass<M extends Module = Module> {
  /** diffusers' class name, written as `_class_name` (a literal: bundlers may rename the JS class). */
  readonly className: string;
  /** config.json object → model. Loaders call it inside withoutInit (parameters allocated, not initialised). */
  fromConfig(config: Record<string, unknown>): M;
  /** Weights file stem when saving: 'diffusion_pytorch_model' (diffusers, the default) or 'model' (transformers). */
  readonly weightsName?: string;
}

/** The folder operations io provides. */
export interface ModelStore {
  load<M extends Module>(cls: ModelClass<M>, dir: string, opts?: PretrainedOptions): Promise<M>;
  save(model: ConfigurableModel, dir: string, opts?: SaveOptions): Promise<void>;
}

let store: ModelStore | null = null;

/** Called once by src/io/pretrained.ts. */
export function linkModelStore(s: ModelStore): void {
  store = s;
}

function linked(what: string): ModelStore {
  if (!store) throw new LpoError(`${what}: no model store is linked; import the package entry (or src/io/pretrained.ts), which links it`);
  return store;
}

/**
 * Base of the models that load from and save to folders (diffusers' ModelMixin, transformers' PreTrainedModel).
 * A subclass declares `static className`, `static fromConfig(config)` and `toConfig()` (and `static weightsName`
 * when it is not diffusion_pytorch_model); its key names are declared by its modules' checkpointKeys().
 */
export abstract class PretrainedModel extends Module implements ConfigurableModel {
  /**
   * A folder (config.json + weights: plain or .fp16, one file or shards) or a lone weights file with its
   * config.json beside it, loaded strictly (every parameter, every key) into a model built without initialisation.
   */
  static fromPretrained<M extends Module>(this: ModelClass<M>, dir: string, opts?: PretrainedOptions): Promise<M> {
    return linked(`${this.className}.fromPretrained`).load(this, dir, opts);
  }

  /** Writes config.json and `<weightsName>[.fp16].safetensors` into `dir` (created if needed). */
  savePretrained(dir: string, opts?: SaveOptions): Promise<void> {
    const name = (this.constructor as Partial<ModelClass>).className ?? 'PretrainedModel';
    return linked(`${name}.savePretrained`).save(this, dir, opts);
  }

  /** The config as its config.json object (what the class's fromConfig reads back). */
  abstract toConfig(): Record<string, unknown>;
}
