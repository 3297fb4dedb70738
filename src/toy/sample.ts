// Sampling the toy model in batches: one image per (prompt, seed), its initial latent drawn from Generator(seed)
// alone, so an image does not depend on which other prompts share its batch (diffusers' generator-per-image
// practice). DDIM η = 0 by default and 20 steps with CFG, as the demo evaluates.
import { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import type { StableDiffusionPipeline } from '../diffusion/pipeline.js';

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

/** Generates one image per request, in batches. */
export async function sampleImages(pipe: StableDiffusionPipeline, requests: readonly SampleRequest[], o: SampleOptions = {}): Promise<Sampled[]> {
  const batch = o.batch ?? 96;
  const f = pipe.vaeScaleFactor;
  const shape = [pipe.unet.config.inChannels, pipe.sampleSize, pipe.sampleSize];
  const per = shape[0] * shape[1] * shape[2];
  const out: Sampled[] = [];
  for (let i = 0; i < requests.length; i += batch) {
    const part = requests.slice(i, i + batch);
    const init = new Float32Array(part.length * per);
    part.forEach((r, k) => init.set(initialLatent(r.seed, shape), k * per));
    const latents = Tensor.fromArray(init, [part.length, ...shape]);
    const res = await pipe.generate({
      prompt: part.map((r) => r.prompt), latents,
      numInferenceSteps: o.steps ?? 20, guidanceScale: o.guidanceScale ?? 5, eta: o.eta ?? 0,
      height: shape[1] * f, width: shape[2] * f,
    });
    latents.dispose();
    const imgs = await res.images!.toArray();
    const lats = await res.latents.toArray();
    for (const t of [res.images!, res.latents, res.promptEmbeds, res.negativePromptEmbeds]) t?.dispose();
    const ip = imgs.length / part.length;
    part.forEach((r, k) => out.push({ ...r, image: imgs.slice(k * ip, (k + 1) * ip), latent: lats.slice(k * per, (k + 1) * per) }));
    o.onProgress?.(Math.min(i + batch, requests.length), requests.length);
  }
  return out;
}
