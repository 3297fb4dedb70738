// Pair-validity thresholds of LPO's preference_score_compare (LPO-SPEC §4.2, paper Eq. 12, 16–17).
//
// The authors hard-code the DDIM η = 1 std σ_t (and its square) of SD's 20-step leading grid, t = 1, 51, …,
// 951, indexed by t // 50, and map it linearly onto [th_min, th_max]. Their tables are float32 torch
// tensors and the map runs in float32; we round every intermediate to float32 the same way, so the
// thresholds equal theirs to the last bit (the golden data's `threshold.values`).
import { ArgumentError } from '../errors.js';

const f = Math.fround;

/** σ_t of the 20-step grid (authors' table, compare_funcs.py), index t // 50. */
export const SIGMA_TABLE: readonly number[] = [
  0.0206, 0.0406, 0.1673, 0.2144, 0.2509, 0.2836, 0.3144, 0.3442, 0.3732, 0.4016,
  0.4293, 0.4565, 0.4829, 0.5087, 0.5336, 0.5576, 0.5807, 0.6029, 0.6241, 0.6444,
].map(f);

/** σ_t² of the same grid (authors' "variance" table). */
export const VARIANCE_TABLE: readonly number[] = [
  0.0004, 0.0016, 0.0280, 0.0460, 0.0630, 0.0804, 0.0988, 0.1185, 0.1393, 0.1613,
  0.1843, 0.2084, 0.2332, 0.2588, 0.2847, 0.3109, 0.3372, 0.3635, 0.3895, 0.4153,
].map(f);

/**
 * 'sigma' (Eq. 12, the authors' choice), 'variance' and 'linear' (in t over [1, 951]) are the dynamic
 * strategies of compare_funcs.py; 'constant' is a fixed threshold (their `threshold` field, the SPO way).
 */
export type ThresholdStrategy = 'sigma' | 'variance' | 'linear' | 'constant';

export interface ThresholdConfig {
  strategy: ThresholdStrategy;
  /** [th_min, th_max] for the dynamic strategies: [0.35, 0.50] for SD1.5/2.1, [0.45, 0.60] for SDXL. */
  range?: readonly [number, number];
  /** The threshold of 'constant'. */
  value?: number;
  /**
   * A table to use instead of the authors' (σ_t or σ_t² per t // 50), e.g. from thresholdTableFromStd for a
   * grid other than 20 steps. Index = t // stride.
   */
  table?: readonly number[];
  /** The grid stride that indexes `table` (default 50, SD's 1000 / 20). */
  stride?: number;
}

export const SD15_THRESHOLD: ThresholdConfig = { strategy: 'sigma', range: [0.35, 0.5] };
export const SDXL_THRESHOLD: ThresholdConfig = { strategy: 'sigma', range: [0.45, 0.6] };

export function validateThresholdConfig(c: ThresholdConfig): void {
  if (c.strategy === 'constant') {
    if (c.value === undefined || !(c.value >= 0 && c.value < 1)) throw new ArgumentError(`threshold: 'constant' needs a value in [0, 1), got ${c.value}`);
    return;
  }
  if (!['sigma', 'variance', 'linear'].includes(c.strategy)) throw new ArgumentError(`threshold: unknown strategy '${c.strategy}' (sigma, variance, linear, constant)`);
  const r = c.range;
  if (!r || r.length !== 2 || !(r[0] >= 0 && r[0] <= r[1] && r[1] < 1)) throw new ArgumentError(`threshold: range must be [min, max] with 0 ≤ min ≤ max < 1, got ${JSON.stringify(r)}`);
  if (c.stride !== undefined && !(Number.isInteger(c.stride) && c.stride > 0)) throw new ArgumentError(`threshold: stride must be a positive integer, got ${c.stride}`);
}

function tableMap(table: readonly number[], lo: number, hi: number, t: number, stride: number): number {
  const i = Math.floor(t / stride);
  if (!(i >= 0 && i < table.length)) {
    throw new ArgumentError(`threshold: t = ${t} is outside the table (t // ${stride} must be < ${table.length}); give a table for this grid (thresholdTableFromStd)`);
  }
  const tmin = table[0];
  const tmax = table[table.length - 1];
  // torch: (table − min)/(max − min)·(th_max − th_min) + th_min; tensor ops in float32, the Python float
  // th_max − th_min in float64 and then rounded to the tensor's float32.
  const frac = f(f(table[i] - tmin) / f(tmax - tmin));
  return f(f(frac * f(hi - lo)) + f(lo));
}

/** th(t) for one timestep. */
export function threshold(c: ThresholdConfig, t: number): number {
  validateThresholdConfig(c);
  if (c.strategy === 'constant') return c.value!;
  const [lo, hi] = c.range!;
  const stride = c.stride ?? 50;
  switch (c.strategy) {
    case 'sigma':
      return tableMap(c.table ?? SIGMA_TABLE, lo, hi, t, stride);
    case 'variance':
      return tableMap(c.table ?? VARIANCE_TABLE, lo, hi, t, stride);
    case 'linear': {
      // (t − 1)/(951 − 1)·(th_max − th_min) + th_min, with torch's int64 t promoted to float32
      const tMin = 1;
      const tMax = c.table ? (c.table.length - 1) * stride + 1 : 951;
      const frac = f(f(t - tMin) / (tMax - tMin));
      return f(f(frac * f(hi - lo)) + f(lo));
    }
  }
  throw new ArgumentError(`threshold: unknown strategy '${c.strategy}'`);
}

/**
 * A σ table for another grid from the scheduler's η = 1 stds, ordered by t // stride (ascending t):
 * pass std = t ↦ scheduler.stdDevT(t, prev, 1) for t = stride·i + offset. 'variance' wants the squares.
 */
export function thresholdTableFromStd(timestepsAscending: readonly number[], std: (t: number) => number, square = false): number[] {
  return timestepsAscending.map((t) => f(square ? std(t) ** 2 : std(t)));
}

/** The LRM score gap s_max − s_min that makes p_w − p_l = th: 2·artanh(th). */
export function scoreGapFor(th: number): number {
  return 2 * Math.atanh(th);
}
