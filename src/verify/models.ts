// Models of the reference folder, built from each section's config.json and loaded strictly by key name
// (every file key used, every parameter present). Cached per weights file for the sections that share them.
import { dirname } from 'node:path';
import { openWeights, loadStateDict, keyOptionsFor, type WeightsReader } from '../io/diffusers.js';
import { CLIPTokenizer } from '../io/tokenizer.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../nn/clip.js';
import { UNet2DConditionModel } from '../nn/unet.js';
import { AutoencoderKL, type AutoencoderKLConfigJson } from '../nn/vae.js';
import type { UNet2DConditionConfigJson } from '../nn/unet_config.js';
import { readJson } from '../io/diffusers.js';
import type { SectionContext } from './types.js';

const cache = new Map<string, Promise<unknown>>();

function weightsOf(ctx: SectionContext, section: string): { config: string; weights: string } {
  const files = Object.keys(ctx.manifest.sections[section]?.files ?? {});
  const w = files.find((f) => /(^|\/)(weights|model|diffusion_pytorch_model)\.safetensors$/.test(f));
  const c = files.find((f) => /(^|\/)config\.json$/.test(f));
  if (!w || !c) throw new Error(`manifest.json section '${section}' lists no config.json / weights.safetensors`);
  return { config: ctx.file(c), weights: ctx.file(w) };
}

async function load<M>(key: string, make: () => M, weights: string | WeightsReader, component: string): Promise<M> {
  let p = cache.get(key) as Promise<M> | undefined;
  if (!p) {
    p = (async () => {
      const model = make();
      const reader = typeof weights === 'string' ? await openWeights(weights) : weights;
      try {
        await loadStateDict(model as unknown as Parameters<typeof loadStateDict>[0], reader, keyOptionsFor(component));
      } finally {
        await reader.close();
      }
      return model;
    })();
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

export function textEncoderOf(ctx: SectionContext, section = 'text_encoder'): Promise<CLIPTextModel> {
  const { config, weights } = weightsOf(ctx, section);
  return load(weights, () => new CLIPTextModel(parseCLIPTextConfig(readJson(config))), weights, 'text_encoder');
}

export function unetOf(ctx: SectionContext, section = 'unet'): Promise<UNet2DConditionModel> {
  const { config, weights } = weightsOf(ctx, section);
  return load(weights, () => new UNet2DConditionModel(readJson(config) as unknown as UNet2DConditionConfigJson), weights, 'unet');
}

export function vaeOf(ctx: SectionContext, section = 'vae', reader?: WeightsReader, key?: string): Promise<AutoencoderKL> {
  const { config, weights } = weightsOf(ctx, section);
  return load(key ?? weights, () => new AutoencoderKL(readJson(config) as unknown as AutoencoderKLConfigJson), reader ?? weights, 'vae');
}

export function tokenizerOf(ctx: SectionContext, section = 'tokenizer'): CLIPTokenizer {
  const files = Object.keys(ctx.manifest.sections[section]?.files ?? {});
  const vocab = files.find((f) => /\.txt(\.gz)?$/.test(f));
  return CLIPTokenizer.fromFile(vocab ? ctx.file(vocab) : undefined);
}

export function sectionDir(ctx: SectionContext, section: string): string {
  return dirname(weightsOf(ctx, section).config);
}

/** Drops the cached models (between verify runs in one process). */
export function clearModelCache(): void {
  cache.clear();
}
