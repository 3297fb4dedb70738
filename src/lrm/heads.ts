// A linear-probe warm start of the LRM's heads before full training ("LP-FT", Kumar et al. 2022: fine-tuning a
// pretrained network under freshly initialised heads distorts its features before the heads are any good).
// The LRM's heads start at N(0, 0.02²) and its score is a cosine of the two projections, so a short full training
// run spends most of its steps turning random projections into useful ones while the backbone drifts. Here the
// truncated U-Net and the text encoder are held fixed: the visual features of the training pairs, noised as
// trainLrm noises them (one timestep per pair from `timesteps`, independent noise per image, `draws` times over),
// and the prompts' pooled text features are computed once, without gradients; then visual_projection,
// text_projection and τ are fitted to the same pair loss by full-batch AdamW on those cached features. Each step
// is a handful of small launches, so hundreds of steps cost seconds. trainLrm then continues from these heads.
// The cache is one [2·pairs·draws, Dv] tensor: meant for small pair sets such as the toy world's (at SD1.5's Dv of
// ~4.8k it fits ~3,400 pair draws under lavapipe's 128 MiB binding limit; past a limit the runtime says so).
import { ArgumentError } from '../errors.js';
import { backward, noGrad } from '../autograd/tape.js';
import { AdamW } from '../optim/adamw.js';
import { gpu } from '../gpu/runtime.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { embedding } from '../tensor/ops/embedding.js';
import { concat, slice } from '../tensor/ops/layout.js';
import { linear } from '../tensor/ops/matmul.js';
import type { DDIMScheduler } from '../diffusion/ddim.js';
import type { PairDataset, PairMeta, PairRow } from '../io/pairs/types.js';
import type { AutoencoderKL } from '../nn/vae.js';
import { cleanLatents, noisyLatents, PairDraws, pairPrompts } from './batch.js';
import { pairAccuracy, pairLoss, pairWeights } from './loss.js';
import type { LatentRewardModel } from './model.js';
import { lrmScheduler } from './noise.js';
import { LRM_TIMESTEPS } from './schedule.js';
import { cosineScores } from './score.js';

export interface FitHeadsOptions {
  /** Full-batch optimizer steps on the cached features (default 300). */
  steps?: number;
  /** AdamW learning rate of the heads (default 1e-2; they start near zero). */
  lr?: number;
  /** AdamW weight decay (default 0). */
  weightDecay?: number;
  /** Noisy copies of every training pair, each at its own timestep and noise (default 4). */
  draws?: number;
  /** Candidate timesteps (default {1, 51, …, 951}, as trainLrm). */
  timesteps?: readonly number[];
  /** Seed of the timestep and noise draws (default 42). */
  seed?: number;
  /** Pairs per feature-extraction pass (default 32). */
  batchPairs?: number;
  /** Keeps a training row (e.g. an MPCF filter). */
  where?: (meta: PairMeta) => boolean;
  /** Encodes rows that carry images but no latents. */
  vae?: AutoencoderKL;
  scheduler?: DDIMScheduler;
  /** After each step (loss and accuracy on the cached training features). */
  onStep?: (m: { step: number; loss: number; accuracy: number }) => void;
}

export interface FitHeadsResult {
  /** Training pairs read, and noisy pair samples fitted (pairs × draws). */
  pairs: number;
  samples: number;
  /** Loss and accuracy on the cached samples after the last step. */
  loss: number;
  accuracy: number;
  seconds: number;
}

/** Pooled visual features [2n, Dv] and pooled text features [2n, hidden] of one chunk of pairs at its draws. */
function chunkFeatures(model: LatentRewardModel, rows: readonly PairRow[], env: { timesteps: readonly number[]; draws: PairDraws; scheduler: DDIMScheduler; vae?: AutoencoderKL }) {
  const c = model.unet.config;
  const src = { vae: env.vae, latentShape: [c.inChannels, model.config.sampleSize, model.config.sampleSize] as const, scalingFactor: model.config.scalingFactor };
  const ts = env.draws.timesteps(rows.length, env.timesteps);
  return noGrad(() => {
    const z0 = cleanLatents(rows, src, env.draws);
    const x = noisyLatents(z0, ts, env.scheduler, env.draws);
    const text = model.encodeText(pairPrompts(rows));
    try {
      return tidy(() => {
        const f = model.imageFeatures(x, [...ts, ...ts], text);
        const pooledText = embedding(Tensor.fromArray(text.index, [text.index.length], 'i32'), text.pooled);
        return { visual: f.concat, text: pooledText };
      });
    } finally {
      text.dispose();
      x.dispose();
      z0.dispose();
    }
  });
}

/** Fits visual_projection, text_projection and τ on frozen features of `train` (see the file comment). */
export async function fitLrmHeads(model: LatentRewardModel, train: PairDataset, o: FitHeadsOptions = {}): Promise<FitHeadsResult> {
  const steps = o.steps ?? 300;
  const nDraws = o.draws ?? 4;
  const batchPairs = o.batchPairs ?? 32;
  for (const [v, what] of [[steps, 'steps'], [nDraws, 'draws'], [batchPairs, 'batchPairs']] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ArgumentError(`fitLrmHeads: ${what} must be a positive integer, got ${v}`);
  }
  const lr = o.lr ?? 1e-2;
  if (!(lr > 0)) throw new ArgumentError(`fitLrmHeads: lr must be > 0, got ${lr}`);
  const t0 = Date.now();
  const rows: PairRow[] = [];
  for await (const r of train.rows({ images: !!o.vae, latents: true, where: o.where })) rows.push(r);
  if (!rows.length) throw new ArgumentError(`fitLrmHeads: '${train.source}' yielded no training pairs`);
  const env = { timesteps: o.timesteps ?? LRM_TIMESTEPS, draws: new PairDraws(o.seed ?? 42), scheduler: o.scheduler ?? lrmScheduler(model), vae: o.vae };

  // Cached features, image-0 blocks and image-1 blocks kept apart so that the pair loss sees [all image 0; all image 1].
  const vis: [Tensor[], Tensor[]] = [[], []];
  const txt: [Tensor[], Tensor[]] = [[], []];
  const label0: number[] = [];
  const label1: number[] = [];
  const perPrompt: number[] = [];
  for (let d = 0; d < nDraws; d++) {
    for (let s = 0; s < rows.length; s += batchPairs) {
      const chunk = rows.slice(s, s + batchPairs);
      const n = chunk.length;
      const f = chunkFeatures(model, chunk, env);
      for (const k of [0, 1] as const) {
        vis[k].push(slice(f.visual, 0, { start: k * n, end: (k + 1) * n }));
        txt[k].push(slice(f.text, 0, { start: k * n, end: (k + 1) * n }));
      }
      f.visual.dispose();
      f.text.dispose();
      for (const r of chunk) {
        label0.push(r.label0);
        label1.push(r.label1);
        perPrompt.push(r.numExamplesPerPrompt);
      }
      await gpu().sync(); // one chunk in flight at a time
    }
  }
  const V = concat([...vis[0], ...vis[1]], 0);
  const P = concat([...txt[0], ...txt[1]], 0);
  for (const t of [...vis[0], ...vis[1], ...txt[0], ...txt[1]]) t.dispose();
  const labels = { label0, label1, weights: pairWeights(perPrompt) };
  const M = label0.length;

  const params = [model.visualProjection.weight, model.textProjection.weight, model.logitScale];
  const opt = new AdamW(params, { lr, weightDecay: o.weightDecay ?? 0 });
  let loss = NaN;
  let accuracy = NaN;
  try {
    for (let step = 1; step <= steps; step++) {
      const { lossT, scores } = tidy(() => {
        const s = cosineScores(linear(P, model.textProjection.weight), linear(V, model.visualProjection.weight), model.logitScale).scores;
        const out = pairLoss(s, labels);
        out.logits.dispose();
        out.probs.dispose();
        out.perPair.dispose();
        return { lossT: out.loss, scores: s };
      });
      backward(lossT);
      opt.step();
      opt.zeroGrad();
      // Both values come back from one wait (one readback point per step).
      const [lv, v] = await Promise.all([lossT.item(), scores.toArray()]);
      loss = lv;
      lossT.dispose();
      scores.dispose();
      let acc = 0;
      for (let i = 0; i < M; i++) acc += pairAccuracy(v[i], v[M + i], label0[i], label1[i]);
      accuracy = acc / M;
      if (!Number.isFinite(loss)) throw new ArgumentError(`fitLrmHeads: the loss became ${loss} at step ${step} (lower lr)`);
      o.onStep?.({ step, loss, accuracy });
    }
  } finally {
    opt.dispose();
    V.dispose();
    P.dispose();
  }
  return { pairs: rows.length, samples: M, loss, accuracy, seconds: (Date.now() - t0) / 1000 };
}
