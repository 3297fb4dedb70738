// LRM training schedule (LPO-SPEC §2.4): DeepSpeed's WarmupDecayLR with its default log warm-up, and the
// candidate timesteps of the noisy-latent training.
import { ArgumentError } from '../errors.js';

/** {1, 51, …, 951}: `range(1, largest_timestep + 1, 50)`, the 20-step DDIM "leading" grid. */
export const LRM_TIMESTEPS: readonly number[] = Array.from({ length: 20 }, (_, i) => 1 + 50 * i);

export interface WarmupDecay {
  maxLr: number;
  /** warmup_num_steps (500 for LRM-1.5). */
  warmup: number;
  /** total_num_steps: the lr reaches 0 there (max_steps). */
  total: number;
}

/**
 * The learning rate of optimizer step `step` (0-based), as DeepSpeed's WarmupDecayLR (warmup_min_lr = 0,
 * warmup_type 'log') gives it: max_lr·ln(step + 1)/ln(warmup) while step < warmup, then
 * max_lr·max(0, (total − step)/(total − warmup)); with warmup ≤ 1 there is no warm-up. Step 0 thus runs at
 * lr 0. (DeepSpeed 0.8.3's scheduler sets no lr before its first step() call, so there the very first update uses
 * the optimizer's configured lr and the sequence above follows one step late; we follow the formula from step 0.)
 */
export function warmupDecayLr(step: number, s: WarmupDecay): number {
  if (!(s.maxLr >= 0) || !Number.isInteger(s.warmup) || s.warmup < 0 || !Number.isInteger(s.total) || s.total < 1) {
    throw new ArgumentError(`warmupDecayLr: need maxLr ≥ 0, integer warmup ≥ 0 and total ≥ 1, got ${JSON.stringify(s)}`);
  }
  if (step < s.warmup && s.warmup > 1) return (s.maxLr * Math.log(step + 1)) / Math.log(s.warmup);
  return s.maxLr * Math.max(0, (s.total - step) / Math.max(1, s.total - s.warmup));
}
