// What the LPO commands load: the base model's U-Net, text encoder, tokenizer and scheduler (no VAE: LPO never
// decodes), and a latent reward model whose latent space is checked against the base model's VAE.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import '../io/pretrained.js'; // links fromPretrained of the model classes to the loader
import { DDIMScheduler } from '../diffusion/ddim.js';
import { CLIPTokenizer } from '../io/tokenizer.js';
import { DiffusersError } from '../io/weights.js';
import { CLIPTextModel } from '../nn/clip.js';
import { UNet2DConditionModel } from '../nn/unet.js';
import { LatentRewardModel } from '../lrm/model.js';
import { assertSameLatentSpace, LatentSpaceMismatchError } from '../lpo/reward.js';
import type { Tensor } from '../tensor/tensor.js';

export interface LpoBase {
  unet: UNet2DConditionModel;
  textEncoder: CLIPTextModel;
  tokenizer: CLIPTokenizer;
  scheduler: DDIMScheduler;
  encodePrompt(prompts: readonly string[]): Tensor;
  dispose(): void;
}

function readJsonIn(dir: string, file: string): Record<string, unknown> | null {
  const p = join(dir, file);
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>) : null;
}

/** The parts of a diffusers SD folder the LPO loop uses. */
export async function loadLpoBase(dir: string): Promise<LpoBase> {
  const tokDir = join(dir, 'tokenizer');
  const merges = ['merges.txt', 'bpe_simple_vocab_16e6.txt.gz'].map((f) => join(tokDir, f)).find((p) => existsSync(p));
  if (existsSync(tokDir) && !merges) throw new DiffusersError(tokDir, 'the tokenizer folder has no merges.txt');
  const tokenizer = CLIPTokenizer.fromFile(merges);
  const scheduler = DDIMScheduler.fromFile(join(dir, 'scheduler'));
  const unet = await UNet2DConditionModel.fromPretrained(join(dir, 'unet'));
  let textEncoder: CLIPTextModel;
  try {
    textEncoder = await CLIPTextModel.fromPretrained(join(dir, 'text_encoder'));
  } catch (e) {
    unet.dispose();
    throw e;
  }
  return {
    unet, textEncoder, tokenizer, scheduler,
    encodePrompt(prompts) {
      const o = textEncoder.forward(tokenizer.encodeBatch(prompts));
      o.poolerOutput.dispose();
      return o.lastHiddenState;
    },
    dispose() {
      unet.dispose();
      textEncoder.dispose();
    },
  };
}

/**
 * Loads an LRM folder for tuning the model at `modelDir`. A heterogeneous LRM (built on another base model) is
 * fine when it shares the VAE: its base's vae/config.json (or `lrmVaeDir`'s) must define the model's latent
 * space, and its scaling factor must be the model VAE's. Returns a note for the log.
 */
export async function loadLrmFor(modelDir: string, lrmDir: string, lrmVaeDir?: string): Promise<{ lrm: LatentRewardModel; note: string }> {
  const lrm = await LatentRewardModel.fromPretrained(lrmDir);
  try {
    const mine = readJsonIn(join(modelDir, 'vae'), 'config.json');
    const theirDir = lrmVaeDir ?? (lrm.baseModel ? join(lrm.baseModel, 'vae') : null);
    const theirs = theirDir ? readJsonIn(theirDir, 'config.json') : null;
    if (mine && theirs) {
      assertSameLatentSpace(mine, theirs, { policy: `the model ${modelDir}`, reward: `the LRM ${lrmDir} (VAE ${theirDir})` });
    }
    const sf = mine?.scaling_factor;
    if (typeof sf === 'number' && sf !== lrm.config.scalingFactor) {
      throw new LatentSpaceMismatchError(`the LRM ${lrmDir} works on latents scaled by ${lrm.config.scalingFactor}, the model ${modelDir} scales by ${sf}: a heterogeneous LRM must share the VAE`);
    }
    const note = mine && theirs ? `LRM latent space checked against ${theirDir}` : 'LRM latent space: scaling factor checked (no VAE config to compare in full; pass --lrm-vae)';
    return { lrm, note };
  } catch (e) {
    lrm.dispose();
    throw e;
  }
}
