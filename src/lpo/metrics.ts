// Per-iteration training metrics (one JSON object per line in the metrics file).
import { appendFileSync } from 'node:fs';
import type { StepwiseResult } from './sampler.js';
import type { GrpoStepStats, LpoStepStats, PhaseTimes } from './update.js';

export interface RatioStats { mean: number; min: number; max: number }

export interface IterationMetrics {
  iteration: number;
  epoch: number;
  batch: number;
  algo: 'lpo' | 'grpo';
  prompts: number;
  /** Valid pairs (LPO) or groups (GRPO) trained on. */
  items: number;
  /** Valid pairs / (prompts × collected steps), and per timestep. */
  validRate: number;
  validRateByT: Record<string, number>;
  /** Mean s_w − s_l over the valid pairs (LPO). */
  rewardMargin: number | null;
  /** Mean reward of all candidates of all steps, and of the trajectories' final latents. */
  meanScore: number;
  finalScore: number;
  optimizerSteps: number;
  /** Mean loss over this iteration's optimizer steps (null when none ran). */
  loss: number | null;
  /** exp(log π_θ − log π_ref) before the clamp (LPO), or π_θ/π_old (GRPO). */
  ratio: RatioStats | null;
  /** Fraction of ratios outside [1 − ε, 1 + ε]: no gradient from them. */
  clampedFraction: number | null;
  kl: number | null;
  seconds: PhaseTimes & { sample: number; total: number };
  itemsPerSecond: number;
}

export function ratioStats(xs: readonly number[]): RatioStats | null {
  if (xs.length === 0) return null;
  let s = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of xs) {
    s += x;
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  return { mean: s / xs.length, min: lo, max: hi };
}

/** Valid rate per timestep and overall, over the steps that collected pairs. */
export function validRates(r: StepwiseResult): { overall: number; byT: Record<string, number> } {
  const byT: Record<string, number> = {};
  let v = 0;
  let n = 0;
  for (const s of r.steps) {
    if (!s.collected) continue;
    byT[String(s.t)] = s.total ? s.valid / s.total : 0;
    v += s.valid;
    n += s.total;
  }
  return { overall: n ? v / n : 0, byT };
}

/** Ratios and the clamped fraction of the LPO steps (both winners and losers). */
export function lpoRatioSummary(steps: readonly LpoStepStats[], clipEps: number): { ratio: RatioStats | null; clamped: number | null } {
  const r = steps.flatMap((s) => [...s.logRatioW, ...s.logRatioL]).map(Math.exp);
  const out = r.filter((x) => x < 1 - clipEps || x > 1 + clipEps).length;
  return { ratio: ratioStats(r), clamped: r.length ? out / r.length : null };
}

export function grpoRatioSummary(steps: readonly GrpoStepStats[], clip: number): { ratio: RatioStats | null; clamped: number | null; kl: number | null } {
  const r = steps.flatMap((s) => s.ratios);
  const kl = steps.flatMap((s) => s.kl);
  const out = r.filter((x) => x < 1 - clip || x > 1 + clip).length;
  return { ratio: ratioStats(r), clamped: r.length ? out / r.length : null, kl: kl.length ? kl.reduce((a, b) => a + b, 0) / kl.length : null };
}

export function appendMetrics(file: string, m: IterationMetrics): void {
  appendFileSync(file, `${JSON.stringify(m)}\n`);
}
