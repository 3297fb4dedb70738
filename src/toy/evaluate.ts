// The toy world's evaluation ("toy GenEval"): sample held-out prompts at fixed seeds and let the hidden judge
// score every image. Reports the alignment rate (share of images that match their caption), the mean graded
// alignment and aesthetic, each with its seed-to-seed spread (the standard deviation over seeds of the per-seed
// mean over prompts), and the alignment rate by caption category.
import { noGrad } from '../autograd/tape.js';
import { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import type { StableDiffusionPipeline } from '../diffusion/pipeline.js';
import type { AutoencoderKL } from '../nn/vae.js';
import { renderBatch, sampleExample } from './data.js';
import { IMAGE_SIZE } from './scenes.js';
import { parseCaption } from './captions.js';
import { judge } from './judge/judge.js';
import { sampleImages, type Sampled, type SampleOptions } from './sample.js';

export interface JudgedSample extends Sampled {
  match: boolean;
  alignment: number;
  vqa: number;
  aesthetic: number;
}

export interface MeanSpread {
  mean: number;
  /** Standard deviation over seeds of the per-seed means (0 with one seed). */
  spread: number;
}

export interface EvalSummary {
  images: number;
  prompts: number;
  seeds: number;
  alignmentRate: MeanSpread;
  alignmentScore: MeanSpread;
  aesthetic: MeanSpread;
  /** Alignment rate per category: 'count 1', 'count 2', 'count 3', 'left of', 'right of', 'above', 'below'. */
  byCategory: Record<string, number>;
}

export function captionCategory(caption: string): string {
  const s = parseCaption(caption);
  return s.kind === 'count' ? `count ${s.n}` : s.relation;
}

function meanSpread(rows: readonly JudgedSample[], seeds: readonly number[], value: (r: JudgedSample) => number): MeanSpread {
  const per = seeds.map((s) => {
    const xs = rows.filter((r) => r.seed === s).map(value);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  });
  const mean = per.reduce((a, b) => a + b, 0) / per.length;
  const spread = per.length > 1 ? Math.sqrt(per.reduce((a, b) => a + (b - mean) ** 2, 0) / (per.length - 1)) : 0;
  return { mean, spread };
}

/** Summarises judged samples (any number of prompts × seeds). */
export function summariseSamples(rows: readonly JudgedSample[]): EvalSummary {
  const seeds = [...new Set(rows.map((r) => r.seed))];
  const prompts = new Set(rows.map((r) => r.prompt));
  const byCategory: Record<string, number> = {};
  const counts: Record<string, number> = {};
  for (const r of rows) {
    const c = captionCategory(r.prompt);
    byCategory[c] = (byCategory[c] ?? 0) + (r.match ? 1 : 0);
    counts[c] = (counts[c] ?? 0) + 1;
  }
  for (const c of Object.keys(byCategory)) byCategory[c] /= counts[c];
  return {
    images: rows.length, prompts: prompts.size, seeds: seeds.length,
    alignmentRate: meanSpread(rows, seeds, (r) => (r.match ? 1 : 0)),
    alignmentScore: meanSpread(rows, seeds, (r) => r.alignment),
    aesthetic: meanSpread(rows, seeds, (r) => r.aesthetic),
    byCategory,
  };
}

/** Judges sampled images against their prompts. */
export function judgeSamples(samples: readonly Sampled[]): JudgedSample[] {
  return samples.map((s) => {
    const j = judge(s.image, s.prompt);
    return { ...s, match: j.match, alignment: j.score, vqa: j.vqa, aesthetic: j.aesthetic };
  });
}

/** Samples every prompt at every seed and judges the images. */
export async function evaluatePipeline(
  pipe: StableDiffusionPipeline, prompts: readonly string[], seeds: readonly number[], opts: SampleOptions = {},
): Promise<{ rows: JudgedSample[]; summary: EvalSummary }> {
  const requests = seeds.flatMap((seed) => prompts.map((prompt) => ({ prompt, seed })));
  const rows = judgeSamples(await sampleImages(pipe, requests, opts));
  return { rows, summary: summariseSamples(rows) };
}

/** One line per metric, for logs and READMEs. */
export function formatEvalSummary(s: EvalSummary): string {
  const ms = (m: MeanSpread) => `${m.mean.toFixed(3)} ± ${m.spread.toFixed(3)}`;
  const cats = Object.entries(s.byCategory).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
  return [
    `${s.images} images (${s.prompts} prompts × ${s.seeds} seeds)`,
    `alignment rate ${ms(s.alignmentRate)} (mean ± seed-to-seed std)`,
    `graded alignment ${ms(s.alignmentScore)}`,
    `aesthetic ${ms(s.aesthetic)}`,
    `by category: ${cats}`,
  ].join('\n');
}

/**
 * How faithfully the VAE reproduces scenes: `count` fresh captioned renders → encode (posterior mean) → decode,
 * judged against their captions (a perfect VAE keeps the clean renders' match rate of ~100%), and the MSE in
 * [0, 1] pixel units.
 */
export async function evaluateReconstruction(vae: AutoencoderKL, count: number, seed: number): Promise<{ matchRate: number; mse: number }> {
  const gen = new Generator(seed);
  const ex = Array.from({ length: count }, () => sampleExample(gen, { split: 'all' }));
  const x = renderBatch(ex.map((e) => e.scene));
  const out = noGrad(() => {
    const t = Tensor.fromArray(x, [count, 3, IMAGE_SIZE, IMAGE_SIZE]);
    const post = vae.encode(t);
    const y = vae.decode(post.mean);
    post.dispose();
    t.dispose();
    return y;
  });
  const y = await out.toArray();
  out.dispose();
  let se = 0, matches = 0;
  const per = 3 * IMAGE_SIZE * IMAGE_SIZE;
  ex.forEach((e, i) => {
    const img = new Float32Array(per);
    for (let k = 0; k < per; k++) {
      const v = Math.min(1, Math.max(0, (y[i * per + k] + 1) / 2));
      img[k] = v;
      se += (v - (x[i * per + k] + 1) / 2) ** 2;
    }
    if (judge(img, e.caption).match) matches++;
  });
  return { matchRate: matches / count, mse: se / (count * per) };
}
