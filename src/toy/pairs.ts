// Preference pairs made the way Pick-a-Pic was: the base model draws two images for a training prompt (some
// prompts get several pairs, each image its own seed and guidance scale), and the hidden judge stands in for
// the person who picks one. Like a person it is noisy: image 0 wins with probability σ((s0 − s1)/τ) (Bradley–
// Terry on the judge's overall liking s, see preferenceScore), and close calls are often declared ties.
// Each row also carries per-aspect score gaps, winner − loser (image 0 − image 1 for ties), in the units of
// the authors' side CSV so that MPCF's thresholds mean what they meant there:
//   aesthetic_gap  the judge's aesthetic × 10 (the LAION predictor's 0–10 scale),
//   clipscore_gap  0.15 × graded alignment (the spread of CLIP cosine scores),
//   vqascore_gap   the share of yes answers to the caption's questions (VQAScore's 0–1),
//   different_flag 1 for a win-lose pair, 0 for a tie.
// The rows go to the pair-folder format (src/io/pairs, contract 3) with their PNGs and the final latents.
import { ArgumentError } from '../errors.js';
import { Generator } from '../tensor/random.js';
import { writePairFolder, type PairToWrite } from '../io/pairs/index.js';
import type { PairGaps, PairSplit } from '../io/pairs/types.js';
import type { StableDiffusionPipeline } from '../diffusion/pipeline.js';
import { samplePrompt } from './captions.js';
import { judge, preferenceScore, type Judgement, type PreferenceWeights } from './judge/judge.js';
import { sampleImages, type SampleRequest } from './sample.js';
import { pick } from './scenes.js';

export interface LabelOptions {
  /** Bradley–Terry temperature τ on the preference score (default 0.1). */
  temperature?: number;
  /** Tie probability at equal scores (default 0.5), falling as exp(−|Δs| / tieScale). */
  tieRate?: number;
  tieScale?: number;
  weights?: PreferenceWeights;
}

export interface PairLabel {
  label0: number;
  label1: number;
  /** P(image 0 wins) under the Bradley–Terry model (before the tie draw). */
  pWin0: number;
  /** Winner − loser (image 0 − image 1 for a tie). */
  gaps: Required<PairGaps>;
}

type Judged = Pick<Judgement, 'score' | 'match' | 'vqa' | 'aesthetic'>;

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** The CSV's units for one image (see the file comment). */
export function aspectScores(j: Judged): { aesthetic: number; clip: number; vqa: number } {
  return { aesthetic: 10 * j.aesthetic, clip: 0.2 + 0.15 * j.score, vqa: j.vqa };
}

/** Labels one pair: a tie draw, else a Bradley–Terry coin flip; gaps from the winner's side. */
export function labelPair(j0: Judged, j1: Judged, gen: Generator, o: LabelOptions = {}): PairLabel {
  const tau = o.temperature ?? 0.1;
  if (!(tau > 0)) throw new ArgumentError(`labelPair: temperature must be > 0, got ${tau}`);
  const d = preferenceScore(j0, o.weights) - preferenceScore(j1, o.weights);
  const pWin0 = sigmoid(d / tau);
  const tie = gen.uniform() < (o.tieRate ?? 0.5) * Math.exp(-Math.abs(d) / (o.tieScale ?? 0.03));
  const zeroWins = gen.uniform() < pWin0;
  const [label0, label1] = tie ? [0.5, 0.5] : zeroWins ? [1, 0] : [0, 1];
  const a = aspectScores(j0);
  const b = aspectScores(j1);
  const sign = tie || zeroWins ? 1 : -1;
  return {
    label0, label1, pWin0,
    gaps: { aesthetic: sign * (a.aesthetic - b.aesthetic), clip: sign * (a.clip - b.clip), vqa: sign * (a.vqa - b.vqa), differentFlag: tie ? 0 : 1 },
  };
}

export interface PairGenOptions extends LabelOptions {
  /** Distinct training prompts (default 96). */
  prompts?: number;
  /** Relative frequency of 1, 2, 3, … pairs per prompt (default [0.5, 0.3, 0.2]); each pair draws two new images. */
  pairsPerPrompt?: readonly number[];
  /**
   * Instead of pairsPerPrompt: n images per prompt, compared in all n(n−1)/2 pairings, each pair labelled by its
   * own coin flip (an annotator ranking a grid of n). More comparisons per sampled image: 1.5 pairs per image at
   * n = 4 against 0.5 for fresh pairs, for a sampling-bound budget.
   */
  imagesPerPrompt?: number;
  /** Each image draws its CFG scale from these (default [3, 5, 7.5]), as Pick-a-Pic mixed models and settings. */
  guidanceScales?: readonly number[];
  steps?: number;
  /** Share of prompts whose pairs go to the 'validation' split (default 0.1). */
  validationFraction?: number;
  seed?: number;
  batch?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface ToyPair {
  caption: string;
  split: PairSplit;
  numExamplesPerPrompt: number;
  seeds: [number, number];
  guidance: [number, number];
  images: [Float32Array, Float32Array];
  latents: [Float32Array, Float32Array];
  judgements: [Judgement, Judgement];
  label: PairLabel;
}

/** Draws the base model's pairs for sampled training prompts and labels them. */
export async function generatePairs(pipe: StableDiffusionPipeline, o: PairGenOptions = {}): Promise<ToyPair[]> {
  const gen = new Generator(o.seed ?? 0);
  const weights = o.pairsPerPrompt ?? [0.5, 0.3, 0.2];
  const total = weights.reduce((a, b) => a + b, 0);
  const scales = o.guidanceScales ?? [3, 5, 7.5];
  type Plan = { caption: string; split: PairSplit; n: number; seeds: [number, number]; guidance: [number, number] };
  const plans: Plan[] = [];
  const used = new Set<string>();
  const nPrompts = o.prompts ?? 96;
  const grid = o.imagesPerPrompt;
  if (grid !== undefined && (!Number.isInteger(grid) || grid < 2)) throw new ArgumentError(`generatePairs: imagesPerPrompt must be an integer ≥ 2, got ${grid}`);
  for (let p = 0; p < nPrompts; p++) {
    let caption = samplePrompt(gen);
    for (let k = 0; k < 100 && used.has(caption); k++) caption = samplePrompt(gen);
    used.add(caption);
    const seed = () => 1_000_000 + Math.floor(gen.uniform() * 1e9);
    if (grid) {
      const split: PairSplit = gen.uniform() < (o.validationFraction ?? 0.1) ? 'validation' : 'train';
      const draws = Array.from({ length: grid }, () => ({ seed: seed(), g: pick(gen, scales) }));
      const n = (grid * (grid - 1)) / 2;
      for (let i = 0; i < grid; i++) {
        for (let j = i + 1; j < grid; j++) plans.push({ caption, split, n, seeds: [draws[i].seed, draws[j].seed], guidance: [draws[i].g, draws[j].g] });
      }
      continue;
    }
    let u = gen.uniform() * total;
    let n = 1;
    while (n < weights.length && u >= weights[n - 1]) u -= weights[n++ - 1];
    const split: PairSplit = gen.uniform() < (o.validationFraction ?? 0.1) ? 'validation' : 'train';
    for (let k = 0; k < n; k++) plans.push({ caption, split, n, seeds: [seed(), seed()], guidance: [pick(gen, scales), pick(gen, scales)] });
  }
  // One sampling pass per guidance scale (the pipeline takes one scale per call).
  const images = new Map<string, { image: Float32Array; latent: Float32Array }>();
  const key = (r: SampleRequest, g: number) => `${r.prompt}|${r.seed}|${g}`;
  let done = 0;
  // Each distinct (prompt, seed, scale) is sampled once, however many pairs it is in.
  const draws = new Map<string, { g: number; req: SampleRequest }>();
  for (const p of plans) for (const k of [0, 1] as const) draws.set(key({ prompt: p.caption, seed: p.seeds[k] }, p.guidance[k]), { g: p.guidance[k], req: { prompt: p.caption, seed: p.seeds[k] } });
  const totalImages = draws.size;
  o.onProgress?.(0, totalImages);
  for (const g of new Set(scales)) {
    const reqs = [...draws.values()].filter((d) => d.g === g).map((d) => d.req);
    if (!reqs.length) continue;
    const base = done;
    const out = await sampleImages(pipe, reqs, { steps: o.steps ?? 20, guidanceScale: g, batch: o.batch, onProgress: (d) => o.onProgress?.(base + d, totalImages) });
    for (const s of out) images.set(key(s, g), s);
    done += reqs.length;
  }
  const judged = new Map<Float32Array, Judgement>();
  const judgeOnce = (image: Float32Array, caption: string): Judgement => {
    let j = judged.get(image);
    if (!j) judged.set(image, (j = judge(image, caption)));
    return j;
  };
  return plans.map((p) => {
    const s = ([0, 1] as const).map((k) => images.get(key({ prompt: p.caption, seed: p.seeds[k] }, p.guidance[k]))!);
    const judgements = ([0, 1] as const).map((k) => judgeOnce(s[k].image, p.caption)) as [Judgement, Judgement];
    return {
      caption: p.caption, split: p.split, numExamplesPerPrompt: p.n, seeds: p.seeds, guidance: p.guidance,
      images: [s[0].image, s[1].image], latents: [s[0].latent, s[1].latent], judgements,
      label: labelPair(judgements[0], judgements[1], gen, o),
    };
  });
}

/** A pair relabelled by the hidden preference: the better image wins, equal scores tie. */
export function truthLabelled(p: ToyPair): ToyPair {
  const [label0, label1] = p.label.pWin0 > 0.5 ? [1, 0] : p.label.pWin0 < 0.5 ? [0, 1] : [0.5, 0.5];
  // Gaps are winner − loser (image 0 − image 1 for a tie): flip them when the orientation changes.
  const oldSign = p.label.label0 === 0 ? -1 : 1;
  const newSign = label0 === 0 ? -1 : 1;
  const f = oldSign * newSign;
  const g = p.label.gaps;
  const gaps = { aesthetic: f * g.aesthetic, clip: f * g.clip, vqa: f * g.vqa, differentFlag: (label0 === 0.5 ? 0 : 1) as 0 | 1 };
  return { ...p, label: { ...p.label, label0, label1, gaps } };
}

/** Writes pairs to a pair folder (pairs.jsonl, images/*.png, latents.safetensors). */
export async function writeToyPairs(dir: string, pairs: readonly ToyPair[], latentShape: readonly number[], opts: { overwrite?: boolean } = {}): Promise<{ dir: string; rows: number }> {
  const side = Math.round(Math.sqrt(pairs[0]?.images[0].length / 3 || 1));
  const rows: PairToWrite[] = pairs.map((p) => ({
    caption: p.caption, label0: p.label.label0, label1: p.label.label1, numExamplesPerPrompt: p.numExamplesPerPrompt, split: p.split, gaps: p.label.gaps,
    image0: { data: p.images[0].map((v) => v * 2 - 1), height: side, width: side },
    image1: { data: p.images[1].map((v) => v * 2 - 1), height: side, width: side },
    latent0: { data: p.latents[0], shape: [...latentShape] },
    latent1: { data: p.latents[1], shape: [...latentShape] },
  }));
  return writePairFolder(dir, rows, { overwrite: opts.overwrite });
}

export interface PairStats {
  pairs: number;
  prompts: number;
  validation: number;
  ties: number;
  /** Among win-lose pairs with different scores: the share where the image the judge likes more won. */
  agreement: number;
  /** Share of the pair images that match their caption. */
  imageMatchRate: number;
  meanAbsScoreGap: number;
}

/** Summary numbers of a labelled pair set (for logs and the demo report). */
export function pairStats(pairs: readonly ToyPair[], weights?: PreferenceWeights): PairStats {
  let ties = 0, agree = 0, decided = 0, matches = 0, gap = 0;
  for (const p of pairs) {
    const d = preferenceScore(p.judgements[0], weights) - preferenceScore(p.judgements[1], weights);
    gap += Math.abs(d);
    matches += (p.judgements[0].match ? 1 : 0) + (p.judgements[1].match ? 1 : 0);
    if (p.label.label0 === 0.5) ties++;
    else if (d !== 0) {
      decided++;
      if ((d > 0) === (p.label.label0 === 1)) agree++;
    }
  }
  const n = pairs.length || 1;
  return {
    pairs: pairs.length, prompts: new Set(pairs.map((p) => p.caption)).size, validation: pairs.filter((p) => p.split === 'validation').length,
    ties: ties / n, agreement: decided ? agree / decided : 0, imageMatchRate: matches / (2 * n), meanAbsScoreGap: gap / n,
  };
}
