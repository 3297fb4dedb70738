// Sampling the toy model in batches: one image per (prompt, seed), its initial latent drawn from Generator(seed)
// alone, so an image does not depend on which other prompts share its batch (diffusers' generator-per-image
// practice). DDIM η = 0 by default and 20 steps with CFG, as the demo evaluates.
import { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { noGrad } from '../autograd/tape.js';
import type { StableDiffusionPipeline, UNetLike } from '../diffusion/pipeline.js';
import { generateBestOfN } from '../lpo/best_of_n.js';
import type { RewardModel } from '../lpo/reward.js';

export interface SampleOptions {
  steps?: number;
  guidanceScale?: number;
  eta?: number;
  /** Images per pipeline call (default 96; the U-Net then runs at twice this with CFG). */
  batch?: number;
  /** Called after each batch with the number of images done. */
  onProgress?: (done: number, total: number) => void;
}

export interface SampleRequest {
  prompt: string;
  seed: number;
}

export interface Sampled extends SampleRequest {
  /** RGB CHW [3, H, W] in [0, 1]. */
  image: Float32Array;
  /** The final latent [C, h, w] (× the scaling factor, as the U-Net sees it). */
  latent: Float32Array;
}

/** The initial latent x_T of one seed. */
export function initialLatent(seed: number, shape: readonly number[]): Float32Array {
  return new Generator(seed).normalArray(shape.reduce((a, b) => a * b, 1));
}

/** The initial latents [B, C, h, w] of a batch of requests, each from its own seed. */
function batchLatents(part: readonly SampleRequest[], shape: readonly number[]): Tensor {
  const per = shape.reduce((a, b) => a * b, 1);
  const init = new Float32Array(part.length * per);
  part.forEach((r, k) => init.set(initialLatent(r.seed, shape), k * per));
  return Tensor.fromArray(init, [part.length, ...shape]);
}

/** Splits a batch's images and final latents back into one Sampled per request. */
function splitBatch(part: readonly SampleRequest[], imgs: Float32Array, lats: Float32Array, out: Sampled[]): void {
  const ip = imgs.length / part.length;
  const lp = lats.length / part.length;
  part.forEach((r, k) => out.push({ ...r, image: imgs.slice(k * ip, (k + 1) * ip), latent: lats.slice(k * lp, (k + 1) * lp) }));
}

/** Generates one image per request, in batches. */
export async function sampleImages(pipe: StableDiffusionPipeline, requests: readonly SampleRequest[], o: SampleOptions = {}): Promise<Sampled[]> {
  const batch = o.batch ?? 96;
  const f = pipe.vaeScaleFactor;
  const shape = [pipe.unet.config.inChannels, pipe.sampleSize, pipe.sampleSize];
  const out: Sampled[] = [];
  for (let i = 0; i < requests.length; i += batch) {
    const part = requests.slice(i, i + batch);
    const latents = batchLatents(part, shape);
    const res = await pipe.generate({
      prompt: part.map((r) => r.prompt), latents,
      numInferenceSteps: o.steps ?? 20, guidanceScale: o.guidanceScale ?? 5, eta: o.eta ?? 0,
      height: shape[1] * f, width: shape[2] * f,
    });
    latents.dispose();
    const imgs = await res.images!.toArray();
    const lats = await res.latents.toArray();
    for (const t of [res.images!, res.latents, res.promptEmbeds, res.negativePromptEmbeds]) t?.dispose();
    splitBatch(part, imgs, lats, out);
    o.onProgress?.(Math.min(i + batch, requests.length), requests.length);
  }
  return out;
}

/**
 * LRM-guided step-level best-of-K sampling (src/lpo/best_of_n.ts) of the same requests, from the same initial
 * latents as sampleImages; DDIM η = 1 (the candidates need noise), the final latents decoded once per batch.
 */
export async function sampleBestOfN(
  pipe: StableDiffusionPipeline, reward: RewardModel, requests: readonly SampleRequest[], o: SampleOptions & { K: number; seed: number },
): Promise<Sampled[]> {
  const batch = o.batch ?? 32;
  const unet = pipe.unet as UNetLike & { readonly config: { inChannels: number } };
  const shape = [unet.config.inChannels, pipe.sampleSize, pipe.sampleSize];
  const out: Sampled[] = [];
  for (let i = 0; i < requests.length; i += batch) {
    const part = requests.slice(i, i + batch);
    const x = batchLatents(part, shape);
    const r = await generateBestOfN(
      { unet, scheduler: pipe.scheduler, reward, encodePrompt: (p) => pipe.encodePrompt(p) },
      { prompts: part.map((q) => q.prompt), K: o.K, seed: o.seed + i, numInferenceSteps: o.steps ?? 20, guidanceScale: o.guidanceScale ?? 5, eta: 1, latents: x },
    );
    x.dispose();
    const img = noGrad(() => pipe.decodeLatents(r.latents));
    const [imgs, lats] = await Promise.all([img.toArray(), r.latents.toArray()]);
    img.dispose();
    r.latents.dispose();
    splitBatch(part, imgs, lats, out);
    o.onProgress?.(out.length, requests.length);
  }
  return out;
}
