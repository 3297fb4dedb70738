// Loads a diffusers Stable Diffusion folder (model_index.json + tokenizer/, text_encoder/, unet/, vae/, scheduler/)
// into a StableDiffusionPipeline with our models. Weights are loaded by key name with strict checks.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LpoError } from '../errors.js';
import { openDiffusersModel, loadStateDict, keyOptionsFor, type Component } from '../io/diffusers.js';
import { CLIPTokenizer } from '../io/tokenizer.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../nn/clip.js';
import { UNet2DConditionModel } from '../nn/unet.js';
import { AutoencoderKL } from '../nn/vae.js';
import type { UNet2DConditionConfigJson } from '../nn/unet_config.js';
import type { AutoencoderKLConfigJson } from '../nn/vae.js';
import { ZeroInitGenerator } from '../nn/init.js';
import { DDIMScheduler } from './ddim.js';
import { StableDiffusionPipeline } from './pipeline.js';

export class ModelFolderError extends LpoError {}

export interface LoadPipelineOptions {
  preferFp16?: boolean;
  /** Called with a short line per component as it loads. */
  log?: (msg: string) => void;
}

function tokenizerFrom(dir: string, comp: Component | undefined): CLIPTokenizer {
  const cands = comp ? ['merges.txt', 'bpe_simple_vocab_16e6.txt.gz'].map((f) => path.join(comp.dir, f)) : [];
  const file = cands.find((p) => fs.existsSync(p));
  if (comp && !file) throw new ModelFolderError(`'${dir}': tokenizer/ has no merges.txt`);
  return CLIPTokenizer.fromFile(file);
}

/** A diffusers SD folder → pipeline (scheduler: DDIM from_config of the folder's scheduler config). */
export async function loadStableDiffusion(dir: string, opts: LoadPipelineOptions = {}): Promise<StableDiffusionPipeline> {
  const log = opts.log ?? (() => {});
  const model = await openDiffusersModel(dir, { preferFp16: opts.preferFp16 });
  try {
    const need = (name: string): Component => {
      const c = model.get(name);
      if (!c.config) throw new ModelFolderError(`'${dir}': component '${name}' has no config`);
      return c;
    };
    const sched = need('scheduler');
    const scheduler = DDIMScheduler.fromConfig(sched.config!);
    const tokenizer = tokenizerFrom(dir, model.components.get('tokenizer'));

    // Zero init: each strict load overwrites every parameter, so no random draws are wasted. A failed
    // load frees what was built before it.
    const gen = new ZeroInitGenerator();
    const built: { dispose(): void }[] = [];
    try {
      const te = need('text_encoder');
      log(`text_encoder: ${te.weightsPath}`);
      const textEncoder = new CLIPTextModel(parseCLIPTextConfig(te.config!), { gen });
      built.push(textEncoder);
      await loadStateDict(textEncoder, te.weights!, keyOptionsFor('text_encoder'));

      const un = need('unet');
      log(`unet: ${un.weightsPath}`);
      const unet = new UNet2DConditionModel(un.config as unknown as UNet2DConditionConfigJson, { gen });
      built.push(unet);
      await loadStateDict(unet, un.weights!, keyOptionsFor('unet'));

      const va = need('vae');
      log(`vae: ${va.weightsPath}`);
      const vae = new AutoencoderKL(va.config as unknown as AutoencoderKLConfigJson, { gen });
      built.push(vae);
      await loadStateDict(vae, va.weights!, keyOptionsFor('vae'));

      const ss = (un.config as { sample_size?: number | number[] }).sample_size;
      return new StableDiffusionPipeline({
        tokenizer, textEncoder, unet, vae, scheduler,
        sampleSize: Array.isArray(ss) ? ss[0] : ss ?? 64,
      });
    } catch (e) {
      for (const m of built) m.dispose();
      throw e;
    }
  } finally {
    await model.close();
  }
}
