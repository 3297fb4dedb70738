// Training data of the toy world: captioned scenes rendered to model inputs (CHW in [-1, 1], as SD's VAE takes),
// and the small host-side helpers the toy trainers share (learning-rate schedule, batching of image arrays).
import { Generator } from '../tensor/random.js';
import { parseCaption, samplePrompt, sceneForCaption, type PromptSamplerOptions } from './captions.js';
import { IMAGE_SIZE, renderScene, type Scene } from './scenes.js';

export interface Example {
  caption: string;
  scene: Scene;
}

/** A caption from the sampler and a scene it describes exactly. */
export function sampleExample(gen: Generator, opts: PromptSamplerOptions = {}): Example {
  const caption = samplePrompt(gen, opts);
  return { caption, scene: sceneForCaption(gen, parseCaption(caption)) };
}

/** Images [0, 1] CHW → one [B, 3, S, S] array in [-1, 1] (the VAE's input range). */
export function toModelRange(images: readonly Float32Array[]): Float32Array {
  const per = images[0]?.length ?? 0;
  const out = new Float32Array(images.length * per);
  images.forEach((im, i) => {
    for (let k = 0; k < per; k++) out[i * per + k] = im[k] * 2 - 1;
  });
  return out;
}

/** Renders scenes and packs them for the VAE: [B, 3, 32, 32] in [-1, 1]. */
export function renderBatch(scenes: readonly Scene[]): Float32Array {
  return toModelRange(scenes.map((s) => renderScene(s)));
}

/** Splits a packed [B, 3, S, S] array in [0, 1] into per-image CHW arrays. */
export function unpackImages(data: Float32Array, count: number): Float32Array[] {
  const per = data.length / count;
  return Array.from({ length: count }, (_, i) => data.slice(i * per, (i + 1) * per));
}

/** Linear warm-up to `peak`, then cosine decay to `floor`·peak at `total`. */
export function warmupCosine(step: number, total: number, peak: number, warmup: number, floor = 0.1): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return peak * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

export const PIXELS_PER_IMAGE = 3 * IMAGE_SIZE * IMAGE_SIZE;
