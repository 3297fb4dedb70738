// Synthetic preference pairs whose winner is fixed by a simple latent property tied to the prompt: for "bright"
// the image with the higher mean of latent channel 0 wins, for "dark" the lower one. Both images of a pair share
// the prompt, so a reward model must read the prompt and the latent together (the LRM acceptance experiment).
import { Generator } from '../tensor/random.js';
import { memoryPairs, type MemoryPair } from '../io/pairs/memory.js';
import type { PairDataset } from '../io/pairs/types.js';

export interface BrightDarkOptions {
  /** Latent side (latents are [4, side, side] ~ N(0, 1)). */
  side?: number;
  /** Channel 0 of the two images is pushed apart by ±shift (default 0.75). */
  shift?: number;
  /** Every n-th pair is a tie (labels 0.5/0.5). */
  tieEvery?: number;
  /** Prompts, alternating; the first means "higher channel-0 mean wins" (default ['bright', 'dark']). */
  prompts?: readonly [string, string];
}

export function brightDarkPairs(n: number, seed: number, opts: BrightDarkOptions = {}): MemoryPair[] {
  const gen = new Generator(seed);
  const side = opts.side ?? 8;
  const shift = opts.shift ?? 0.75;
  const [up, down] = opts.prompts ?? ['bright', 'dark'];
  const plane = side * side;
  const out: MemoryPair[] = [];
  const mean0 = (x: Float32Array) => x.subarray(0, plane).reduce((u, v) => u + v, 0) / plane;
  for (let i = 0; i < n; i++) {
    const caption = i % 2 ? down : up;
    const a = gen.normalArray(4 * plane);
    const b = gen.normalArray(4 * plane);
    const s = gen.uniform() < 0.5 ? 1 : -1;
    for (let p = 0; p < plane; p++) {
      a[p] += s * shift;
      b[p] -= s * shift;
    }
    const aWins = (mean0(a) > mean0(b)) === (caption === up);
    const tie = opts.tieEvery !== undefined && i % opts.tieEvery === opts.tieEvery - 1;
    out.push({
      caption,
      label0: tie ? 0.5 : aWins ? 1 : 0,
      label1: tie ? 0.5 : aWins ? 0 : 1,
      numExamplesPerPrompt: 1 + (i % 3),
      latent0: { data: a, shape: [4, side, side] },
      latent1: { data: b, shape: [4, side, side] },
    });
  }
  return out;
}

/** brightDarkPairs as a PairDataset (latents only; resolution = side × 8). */
export function brightDarkDataset(n: number, seed: number, opts: BrightDarkOptions = {}): PairDataset {
  const side = opts.side ?? 8;
  return memoryPairs(brightDarkPairs(n, seed, opts), { resolution: side * 8, source: `<bright/dark pairs, seed ${seed}>` });
}
