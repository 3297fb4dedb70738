// Models of the reference folder, loaded through the one loading route (io's fromPretrained / loadModel: the
// section's config.json + the weights file manifest.json lists, strict keys, the model disposed when a load
// fails). Cached per weights file for the sections that share them.
import { dirname } from 'node:path';
import { fromPretrained, loadModel, type ModelClass } from '../io/pretrained.js';
import { CLIPTokenizer } from '../io/tokenizer.js';
import { readJson, type WeightsReader } from '../io/weights.js';
import { CLIPTextModel } from '../nn/clip.js';
import type { Module } from '../nn/module.js';
import { UNet2DConditionModel } from '../nn/unet.js';
import { AutoencoderKL } from '../nn/vae.js';
import { ReferenceDataError } from './manifest.js';
import type { SectionContext } from './types.js';

const cache = new Map<string, Promise<Module>>();

function weightsOf(ctx: SectionContext, section: string): { config: string; weights: string } {
  const files = Object.keys(ctx.manifest.sections[section]?.files ?? {});
  const w = files.find((f) => /(^|\/)(weights|model|diffusion_pytorch_model)\.safetensors$/.test(f));
  const c = files.find((f) => /(^|\/)config\.json$/.test(f));
  if (!w || !c) throw new ReferenceDataError(`manifest.json section '${section}' lists no config.json / weights.safetensors`);
  return { config: ctx.file(c), weights: ctx.file(w) };
}

/** One load per key; a failed load is forgotten (and its model was already disposed by the route). */
function cached<M extends Module>(key: string, load: () => Promise<M>): Promise<M> {
  let p = cache.get(key) as Promise<M> | undefined;
  if (!p) {
    p = load();
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

function modelOf<M extends Module>(ctx: SectionContext, section: string, cls: ModelClass<M>): Promise<M> {
  const { config, weights } = weightsOf(ctx, section);
  return cached(weights, () => fromPretrained(cls, weights, { config: readJson(config) }));
}

export function textEncoderOf(ctx: SectionContext, section = 'text_encoder'): Promise<CLIPTextModel> {
  return modelOf(ctx, section, CLIPTextModel);
}

export function unetOf(ctx: SectionContext, section = 'unet'): Promise<UNet2DConditionModel> {
  return modelOf(ctx, section, UNet2DConditionModel);
}

/** The section's VAE; with `reader`, the same config loaded from other weights (closed after the load), cached under `key`. */
export function vaeOf(ctx: SectionContext, section = 'vae', reader?: WeightsReader, key?: string): Promise<AutoencoderKL> {
  if (!reader) return modelOf(ctx, section, AutoencoderKL);
  const { config } = weightsOf(ctx, section);
  const k = key ?? reader.path;
  if (cache.has(k)) {
    void reader.close();
    return cache.get(k) as Promise<AutoencoderKL>;
  }
  return cached(k, async () => {
    try {
      return await loadModel(AutoencoderKL, readJson(config), reader);
    } finally {
      await reader.close();
    }
  });
}

export function tokenizerOf(ctx: SectionContext, section = 'tokenizer'): CLIPTokenizer {
  const files = Object.keys(ctx.manifest.sections[section]?.files ?? {});
  const vocab = files.find((f) => /\.txt(\.gz)?$/.test(f));
  return CLIPTokenizer.fromFile(vocab ? ctx.file(vocab) : undefined);
}

export function sectionDir(ctx: SectionContext, section: string): string {
  return dirname(weightsOf(ctx, section).config);
}

/** Frees the cached models and forgets them (between verify runs in one process). */
export async function clearModelCache(): Promise<void> {
  const models = await Promise.allSettled([...cache.values()]);
  cache.clear();
  for (const m of models) if (m.status === 'fulfilled') m.value.dispose();
}
