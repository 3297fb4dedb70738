// LPO's step-level sampler (LPO-SPEC §4.1–4.2, §9.1–9.3, §9.12), in latent space end to end.
//
// For a batch of B prompts, one DDIM η = 1 trajectory each (20 steps, CFG 5.0 against the encoded ""):
// at every step the guided ε̂ gives μ and σ_t, K candidates x_k = μ + σ_t z_k are drawn from the same x_t
// (the K·B candidates share μ: one U-Net call per step), the reward model scores all K·B candidates in one
// call at the CURRENT step's t, a (winner, loser) pair is kept when softmax([s_max, s_min]) clears th(t),
// and the trajectory continues from a uniformly random candidate (not the winner). Nothing is decoded: the
// sampler has no VAE to call.
//
// The same loop serves step-wise GRPO (collect every group of K with its rewards and the sampling policy's
// log-probabilities) and LRM-guided best-of-N inference (continue from the best candidate, collect nothing).
import { ArgumentError, ShapeError } from '../errors.js';
import { noGradAsync } from '../autograd/tape.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import type { Generator } from '../tensor/random.js';
import { add, mul, scale } from '../tensor/ops/elementwise.js';
import { concat, reshape, slice } from '../tensor/ops/layout.js';
import type { DDIMScheduler } from '../diffusion/ddim.js';
import type { UNetLike } from '../diffusion/pipeline.js';
import { cfgNoise } from './cfg.js';
import { candidateLogProbs, ddimMean } from './loss.js';
import type { EncodedText, RewardModel } from './reward.js';
import { selectPairs } from './select.js';
import { SD15_THRESHOLD, validateThresholdConfig, type ThresholdConfig } from './threshold.js';

export interface StepwiseConfig {
  numInferenceSteps?: number;
  guidanceScale?: number;
  eta?: number;
  /** Candidates per step (K). */
  K?: number;
  threshold?: ThresholdConfig;
  /** Only steps with t in [lo, hi] give pairs/groups (an ablation; every step still samples). */
  timestepRange?: readonly [number, number];
  /** 'random' (LPO: a uniformly random candidate) or 'best' (best-of-N: the LRM's favourite). */
  continueWith?: 'random' | 'best';
  /** 'pairs' (LPO), 'groups' (GRPO) or 'none' (inference). */
  collect?: 'pairs' | 'groups' | 'none';
}

export const SAMPLER_DEFAULTS = { numInferenceSteps: 20, guidanceScale: 5, eta: 1, K: 4 } as const;

/** A valid step-level preference pair (tensors [1, C, h, w]; `prompt` indexes the batch). */
export interface StepPair {
  xt: Tensor;
  t: number;
  prompt: number;
  xw: Tensor;
  xl: Tensor;
  scoreW: number;
  scoreL: number;
}

/** A GRPO group: the K candidates of one x_t with their rewards and the sampling policy's log-probs. */
export interface StepGroup {
  xt: Tensor;
  t: number;
  prompt: number;
  /** [K, C, h, w] */
  candidates: Tensor;
  rewards: number[];
  logpOld: number[];
}

export interface StepStats {
  t: number;
  /** Columns whose pair was valid (of `total`). */
  valid: number;
  total: number;
  meanScore: number;
  /** Mean s_max − s_min over the columns. */
  meanMargin: number;
  /** Whether this step's pairs/groups were collected (timestepRange). */
  collected: boolean;
}

export interface StepwiseResult {
  pairs: StepPair[];
  groups: StepGroup[];
  steps: StepStats[];
  /** x_0 of each trajectory [B, C, h, w]. */
  latents: Tensor;
  /** Reward of each trajectory's final latent (the candidate it ended on, scored at the last t). */
  finalScores: number[];
}

export interface StepwiseInputs {
  unet: UNetLike;
  scheduler: DDIMScheduler;
  reward: RewardModel;
  prompts: readonly string[];
  /** Text-encoder contexts of the prompts [B, L, D] and of "" [1, L, D]. */
  cond: Tensor;
  uncond: Tensor;
  /** x_T [B, C, h, w], or the latent shape [C, h, w] to draw it from `gen`. */
  latents: Tensor | readonly [number, number, number];
  gen: Generator;
}

export function disposeStepwise(r: StepwiseResult): void {
  for (const p of r.pairs) for (const t of [p.xt, p.xw, p.xl]) t.dispose();
  for (const g of r.groups) for (const t of [g.xt, g.candidates]) t.dispose();
  r.latents.dispose();
}

function resolve(cfg: StepwiseConfig) {
  const c = {
    steps: cfg.numInferenceSteps ?? SAMPLER_DEFAULTS.numInferenceSteps,
    g: cfg.guidanceScale ?? SAMPLER_DEFAULTS.guidanceScale,
    eta: cfg.eta ?? SAMPLER_DEFAULTS.eta,
    K: cfg.K ?? SAMPLER_DEFAULTS.K,
    threshold: cfg.threshold ?? SD15_THRESHOLD,
    range: cfg.timestepRange ?? null,
    continueWith: cfg.continueWith ?? 'random',
    collect: cfg.collect ?? 'pairs',
  };
  if (!(Number.isInteger(c.K) && c.K >= 2)) throw new ArgumentError(`sampler: K must be an integer ≥ 2, got ${c.K}`);
  if (!(c.eta > 0)) throw new ArgumentError(`sampler: η must be > 0 (the candidates need σ_t > 0), got ${c.eta}`);
  if (c.range && !(c.range[0] <= c.range[1])) throw new ArgumentError(`sampler: timestep range [${c.range}] is empty`);
  validateThresholdConfig(c.threshold);
  return c;
}

/**
 * The K candidates x_k = μ + σ_t z_k of B means [B, C, h, w] with noise z [K, B, C, h, w] (σ per item),
 * flattened k-major to [K·B, C, h, w] (candidate k of item b at row k·B + b).
 */
export function candidatesFrom(mean: Tensor, std: readonly number[], z: Tensor): Tensor {
  const [B, C, h, w] = mean.shape;
  const K = z.shape[0];
  if (z.rank !== 5 || z.shape.slice(1).join() !== mean.shape.join()) throw new ShapeError(`candidates: noise [${z.shape}] must be [K, ${mean.shape}]`);
  if (std.length !== B) throw new ShapeError(`candidates: ${std.length} std devs for ${B} means`);
  return tidy(() => {
    const sz = std.every((s) => s === std[0]) ? scale(z, std[0]) : mul(z, Tensor.fromArray(std, [1, B, 1, 1, 1]));
    return reshape(add(reshape(mean, [1, B, C, h, w]), sz), [K * B, C, h, w]);
  });
}

/** Runs the step-level sampler (no gradients). The caller owns the result (disposeStepwise). */
export async function sampleStepwise(inp: StepwiseInputs, cfg: StepwiseConfig = {}): Promise<StepwiseResult> {
  const c = resolve(cfg);
  const B = inp.prompts.length;
  if (B === 0) throw new ArgumentError('sampler: no prompts');
  if (inp.cond.shape[0] !== B) throw new ShapeError(`sampler: ${B} prompts but a context of [${inp.cond.shape}]`);
  return noGradAsync(async () => {
    let x: Tensor = inp.latents instanceof Tensor ? inp.latents.retain() : Tensor.randn([B, ...inp.latents], inp.gen, inp.scheduler.initNoiseSigma);
    if (x.rank !== 4 || x.shape[0] !== B) throw new ShapeError(`sampler: latents must be [${B}, C, h, w], got [${x.shape}]`);
    const [, C, h, w] = x.shape;
    const res: StepwiseResult = { pairs: [], groups: [], steps: [], latents: x, finalScores: [] };
    // Prompt of candidate row k·B + b; encoded once for the whole trajectory when the reward model can.
    const texts = Array.from({ length: c.K * B }, (_, i) => inp.prompts[i % B]);
    const text = inp.reward.encodeText ? inp.reward.encodeText(texts) : texts;
    try {
      for (const t of inp.scheduler.setTimesteps(c.steps)) {
        const collected = c.collect !== 'none' && (!c.range || (t >= c.range[0] && t <= c.range[1]));
        const { cands, mean, std } = tidy(() => {
          const eps = cfgNoise(inp.unet, x, t, inp.cond, inp.uncond, c.g);
          const r = ddimMean(inp.scheduler, eps, t, x, c.eta);
          const z = Tensor.randn([c.K, B, C, h, w], inp.gen);
          return { cands: candidatesFrom(r.mean, r.std, z), mean: r.mean, std: r.std[0] };
        });
        const scoresT = inp.reward.score(cands, t, text);
        const scores = await scoresT.toArray();
        scoresT.dispose();
        if (scores.length !== c.K * B) throw new ShapeError(`sampler: the reward model returned ${scores.length} scores for ${c.K * B} candidates`);
        const sel = selectPairs(scores, c.K, B, t, c.threshold);
        const row = (k: number, b: number) => slice(cands, 0, { start: k * B + b, end: k * B + b + 1 });
        if (collected && c.collect === 'pairs') {
          for (let b = 0; b < B; b++) {
            if (!sel.valid[b]) continue;
            const [ww, ll] = [sel.winner[b], sel.loser[b]];
            res.pairs.push({ xt: slice(x, 0, { start: b, end: b + 1 }), t, prompt: b, xw: row(ww, b), xl: row(ll, b), scoreW: scores[ww * B + b], scoreL: scores[ll * B + b] });
          }
        } else if (collected && c.collect === 'groups') {
          const lp = candidateLogProbs(cands, mean, new Array<number>(B).fill(std), c.K);
          const logp = await lp.toArray();
          lp.dispose();
          for (let b = 0; b < B; b++) {
            const idx = Array.from({ length: c.K }, (_, k) => k * B + b);
            res.groups.push({
              xt: slice(x, 0, { start: b, end: b + 1 }), t, prompt: b,
              candidates: tidy(() => concat(idx.map((i) => slice(cands, 0, { start: i, end: i + 1 })), 0)),
              rewards: idx.map((i) => scores[i]), logpOld: idx.map((i) => logp[i]),
            });
          }
        }
        let meanScore = 0;
        for (const s of scores) meanScore += s / scores.length;
        res.steps.push({
          t, valid: sel.valid.filter(Boolean).length, total: B, meanScore, collected,
          meanMargin: sel.margin.reduce((a, v) => a + v, 0) / B,
        });
        const pick = Array.from({ length: B }, (_, b) => (c.continueWith === 'best' ? sel.winner[b] : Math.floor(inp.gen.uniform() * c.K)));
        res.finalScores = pick.map((k, b) => scores[k * B + b]);
        const next = tidy(() => concat(pick.map((k, b) => row(k, b)), 0));
        for (const tt of [x, cands, mean]) tt.dispose();
        x = next;
        res.latents = x;
      }
      return res;
    } catch (e) {
      disposeStepwise(res);
      throw e;
    } finally {
      if (!Array.isArray(text)) (text as EncodedText).dispose();
    }
  });
}
