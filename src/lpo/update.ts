// One optimizer step of LPO (on a mini-batch of pairs) or of step-wise GRPO (on a mini-batch of groups).
//
// AdamW updates the LoRA factors only. The authors' `accelerator.clip_grad_norm_(trainable_para, 1.0)` is a
// no-op (LPO-SPEC §9.5: `trainable_para` is a filter iterator that the AdamW constructor already consumed), so
// gradient clipping is off by default here too; `maxGradNorm` turns a real clip on. A mini-batch may be cut
// into micro-batches (memory): each one's loss is weighted by its share, so the accumulated gradient equals
// the whole mini-batch's.
import { performance } from 'node:perf_hooks';
import { ArgumentError } from '../errors.js';
import { backward, noGrad } from '../autograd/tape.js';
import { gpu } from '../gpu/runtime.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { scale } from '../tensor/ops/elementwise.js';
import { concat, permute, reshape, slice } from '../tensor/ops/layout.js';
import type { DDIMScheduler } from '../diffusion/ddim.js';
import type { UNetLike } from '../diffusion/pipeline.js';
import { clipGradNorm, type AdamW } from '../optim/adamw.js';
import type { StepGuard } from '../optim/guard.js';
import { cfgNoise, referenceCfgNoise, type PolicyUNet } from './cfg.js';
import { GRPO_DEFAULTS, gaussianKL, groupAdvantages, grpoLoss } from './grpo.js';
import { candidateLogProbs, ddimMean, LPO_DEFAULTS, lpoLossFromLogProbs, policyPairLogProbs, referencePairLogProbs, type PairBatch } from './loss.js';
import type { StepGroup, StepPair } from './sampler.js';

export interface UpdateContext {
  policy: PolicyUNet;
  /** With setTimesteps(n) already called (prev(t) = t − 1000/n). */
  scheduler: DDIMScheduler;
  optimizer: AdamW;
  /** Text contexts of the sampled prompts [B, L, D] (pairs and groups index them) and of "" [1, L, D]. */
  cond: Tensor;
  uncond: Tensor;
  guidanceScale?: number;
  eta?: number;
  beta?: number;
  clipEps?: number;
  grpoClip?: number;
  klBeta?: number;
  advEps?: number;
  /** Off by default (the authors' clip is a no-op, LPO-SPEC §9.5). */
  maxGradNorm?: number;
  /** Items per forward pass inside one optimizer step (default: the whole mini-batch). */
  microBatch?: number;
  reference?: UNetLike;
  /** Wait for the GPU between phases so each phase's time is its own (benchmarks); otherwise only totals. */
  syncPhases?: boolean;
  /** Checks the gradients before the AdamW step and skips a step with NaN/Inf (src/optim/guard.ts); none: unchecked. */
  guard?: StepGuard;
}

export interface PhaseTimes { reference: number; policy: number; backward: number; optimizer: number }

export interface LpoStepStats {
  pairs: number;
  loss: number;
  /** log π_θ − log π_ref of each winner / loser (before the clamp). */
  logRatioW: number[];
  logRatioL: number[];
  times: PhaseTimes;
  /** The guard found NaN/Inf in the gradients: no AdamW step was taken. */
  skipped?: boolean;
}

export interface GrpoStepStats {
  groups: number;
  loss: number;
  /** ρ = π_θ/π_old of every candidate. */
  ratios: number[];
  kl: number[];
  times: PhaseTimes;
  /** The guard found NaN/Inf in the gradients: no AdamW step was taken. */
  skipped?: boolean;
}

function chunks<T>(xs: readonly T[], size: number | undefined): T[][] {
  const n = size ?? xs.length;
  if (!(Number.isInteger(n) && n >= 1)) throw new ArgumentError(`micro-batch size must be a positive integer, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

class Clock {
  readonly times: PhaseTimes = { reference: 0, policy: 0, backward: 0, optimizer: 0 };
  private t = performance.now();
  constructor(private readonly sync: boolean) {}
  async lap(phase: keyof PhaseTimes): Promise<void> {
    if (this.sync) await gpu().sync();
    const now = performance.now();
    this.times[phase] += (now - this.t) / 1000;
    this.t = now;
  }
}

/** Rows of the shared prompt context, one per item. */
function contextRows(cond: Tensor, prompts: readonly number[]): Tensor {
  return tidy(() => concat(prompts.map((p) => slice(cond, 0, { start: p, end: p + 1 })), 0));
}

/** Clips (when asked) and steps; with a guard, a step with NaN/Inf gradients is skipped. Returns whether it was taken. */
async function finishStep(ctx: UpdateContext, clock: Clock): Promise<boolean> {
  if (ctx.maxGradNorm !== undefined) clipGradNorm(ctx.optimizer.params, ctx.maxGradNorm).dispose();
  let taken = true;
  if (ctx.guard) taken = (await ctx.guard.step(ctx.optimizer, [], 'LPO optimizer step')).finite;
  else {
    ctx.optimizer.step();
    ctx.optimizer.zeroGrad();
  }
  await clock.lap('optimizer');
  return taken;
}

/** One LPO optimizer step on `pairs` (non-empty). */
export async function lpoStep(ctx: UpdateContext, pairs: readonly StepPair[]): Promise<LpoStepStats> {
  if (pairs.length === 0) throw new ArgumentError('lpoStep: no pairs');
  const opts = { guidanceScale: ctx.guidanceScale, eta: ctx.eta, beta: ctx.beta, clipEps: ctx.clipEps, reference: ctx.reference };
  const clock = new Clock(!!ctx.syncPhases);
  const stats: LpoStepStats = { pairs: pairs.length, loss: 0, logRatioW: [], logRatioL: [], times: clock.times };
  for (const part of chunks(pairs, ctx.microBatch)) {
    const batch: PairBatch = {
      xt: concat(part.map((p) => p.xt), 0),
      xw: concat(part.map((p) => p.xw), 0),
      xl: concat(part.map((p) => p.xl), 0),
      cond: contextRows(ctx.cond, part.map((p) => p.prompt)),
      timesteps: part.map((p) => p.t),
    };
    const ref = referencePairLogProbs(ctx.policy, ctx.scheduler, batch, ctx.uncond, opts);
    await clock.lap('reference');
    const pol = policyPairLogProbs(ctx.policy, ctx.scheduler, batch, ctx.uncond, opts);
    const loss = lpoLossFromLogProbs(pol, ref, opts);
    const weighted = part.length === pairs.length ? loss : scale(loss, part.length / pairs.length);
    await clock.lap('policy');
    backward(weighted);
    await clock.lap('backward');
    const [lpw, lpl, lrw, lrl] = await Promise.all([pol.w, pol.l, ref.w, ref.l].map((t) => t.toArray()));
    stats.loss += (await loss.item()) * (part.length / pairs.length);
    lpw.forEach((v, i) => stats.logRatioW.push(v - lrw[i]));
    lpl.forEach((v, i) => stats.logRatioL.push(v - lrl[i]));
    for (const t of new Set([loss, weighted, pol.w, pol.l, pol.mean, ref.w, ref.l, ref.mean, batch.xt, batch.xw, batch.xl, batch.cond])) t.dispose();
  }
  if (!(await finishStep(ctx, clock))) stats.skipped = true;
  return stats;
}

/** One step-wise GRPO optimizer step on `groups` (non-empty, all with the same K). */
export async function grpoStep(ctx: UpdateContext, groups: readonly StepGroup[]): Promise<GrpoStepStats> {
  if (groups.length === 0) throw new ArgumentError('grpoStep: no groups');
  const K = groups[0].rewards.length;
  if (groups.some((g) => g.rewards.length !== K)) throw new ArgumentError('grpoStep: groups of different sizes');
  const g = ctx.guidanceScale ?? LPO_DEFAULTS.guidanceScale;
  const eta = ctx.eta ?? LPO_DEFAULTS.eta;
  const clock = new Clock(!!ctx.syncPhases);
  const stats: GrpoStepStats = { groups: groups.length, loss: 0, ratios: [], kl: [], times: clock.times };
  for (const part of chunks(groups, ctx.microBatch)) {
    const G = part.length;
    const xt = concat(part.map((q) => q.xt), 0);
    const [, C, h, w] = xt.shape;
    const cond = contextRows(ctx.cond, part.map((q) => q.prompt));
    const ts = part.map((q) => q.t);
    const muRef = noGrad(() => tidy(() => ddimMean(ctx.scheduler, referenceCfgNoise(ctx.policy, xt, ts, cond, ctx.uncond, g, ctx.reference), ts, xt, eta).mean));
    await clock.lap('reference');
    // Candidates k-major (row k·G + q), as the sampler lays them out.
    const cands = tidy(() => reshape(permute(reshape(concat(part.map((q) => q.candidates), 0), [G, K, C, h, w]), [1, 0, 2, 3, 4]), [K * G, C, h, w]));
    const kMajor = (per: (q: StepGroup) => ArrayLike<number>) => Array.from({ length: K * G }, (_, i) => per(part[i % G])[Math.floor(i / G)]);
    const old = Tensor.fromArray(kMajor((q) => q.logpOld), [K * G]);
    const adv = Tensor.fromArray(kMajor((q) => groupAdvantages(q.rewards, K, 1, ctx.advEps ?? GRPO_DEFAULTS.advEps)), [K * G]);
    const out = tidy(() => {
      const { mean, std } = ddimMean(ctx.scheduler, cfgNoise(ctx.policy, xt, ts, cond, ctx.uncond, g), ts, xt, eta);
      const logp = candidateLogProbs(cands, mean, std, K);
      const kl = gaussianKL(mean, muRef, std);
      const loss = grpoLoss(logp, old, adv, kl, { clip: ctx.grpoClip, klBeta: ctx.klBeta });
      const weighted = G === groups.length ? loss : scale(loss, G / groups.length);
      return { logp, kl, loss, weighted };
    });
    await clock.lap('policy');
    backward(out.weighted);
    await clock.lap('backward');
    const [lp, lo, kl] = await Promise.all([out.logp.toArray(), old.toArray(), out.kl.toArray()]);
    stats.loss += (await out.loss.item()) * (G / groups.length);
    lp.forEach((v, i) => stats.ratios.push(Math.exp(v - lo[i])));
    stats.kl.push(...kl);
    for (const t of new Set([out.logp, out.kl, out.loss, out.weighted, xt, cond, muRef, cands, old, adv])) t.dispose();
  }
  if (!(await finishStep(ctx, clock))) stats.skipped = true;
  return stats;
}
