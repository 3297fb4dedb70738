// Diffusers model folders: model_index.json + one subfolder per component.
//
//   <model>/model_index.json
//   <model>/unet/config.json           unet/diffusion_pytorch_model[.fp16].safetensors
//   <model>/text_encoder/config.json   text_encoder/model[.fp16].safetensors
//   <model>/vae/config.json            vae/diffusion_pytorch_model[.fp16].safetensors
//   <model>/tokenizer/                 vocab.json, merges.txt
//   <model>/scheduler/scheduler_config.json
//
// This module finds the components, their configs and weights files; loading a component into a model is
// src/io/pretrained.ts (fromPretrained), and the pipeline's assembly is StableDiffusionPipeline.fromPretrained.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DiffusersError, findWeights, openWeights, readJson, requireWeights, type WeightsReader } from './weights.js';

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

const CONFIG_NAMES = ['config.json', 'scheduler_config.json', 'preprocessor_config.json', 'tokenizer_config.json'];

/**
 * Reads a diffusers folder: model_index.json (optional) and each component's config and weights
 * (opened, not loaded). Close the result to release the files.
 */
export async function openDiffusersModel(dir: string, opts: OpenModelOptions = {}): Promise<DiffusersModel> {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new DiffusersError(dir, 'model folder does not exist');
  }
  if (!st.isDirectory()) throw new DiffusersError(dir, 'not a folder');
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
    if (!names.length) throw new DiffusersError(dir, 'no model_index.json and no component folders (config.json or .safetensors)');
  }
  const wanted = opts.components ? new Set(opts.components) : null;
  if (wanted) {
    for (const w of wanted) {
      if (!names.some((n) => n.name === w)) throw new DiffusersError(dir, `no component '${w}' (it has ${names.map((n) => n.name).join(', ') || 'none'})`);
    }
  }

  const components = new Map<string, Component>();
  const opened: WeightsReader[] = [];
  try {
    for (const { name, className } of names) {
      if (wanted && !wanted.has(name)) continue;
      const cdir = path.join(dir, name);
      if (!fs.existsSync(cdir) || !fs.statSync(cdir).isDirectory()) {
        throw new DiffusersError(cdir, `component '${name}'${index ? ' (listed in model_index.json)' : ''}: folder is missing`);
      }
      const configName = CONFIG_NAMES.find((c) => fs.existsSync(path.join(cdir, c))) ?? null;
      const configPath = configName ? path.join(cdir, configName) : null;
      const config = configPath ? readJson(configPath) : null;
      const isModel = /Model|Autoencoder|UNet|Transformer/i.test(className ?? '') || ['unet', 'text_encoder', 'text_encoder_2', 'vae'].includes(name);
      const w = isModel ? requireWeights(cdir, opts.preferFp16) : findWeights(cdir, opts.preferFp16);
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
      if (!c) throw new DiffusersError(dir, `no component '${name}' (it has ${[...components.keys()].join(', ') || 'none'})`);
      return c;
    },
    async close(): Promise<void> {
      for (const f of opened) await f.close();
    },
  };
}
