// Noise schedules and timestep grids of diffusers' discrete schedulers, computed on the host.
//
// diffusers builds its betas with float32 torch ops, and the float32 rounding of alphas_cumprod matters
// at the ends of the schedule (1 − ᾱ_0 ≈ 8.5e-4). So we mirror torch's CPU arithmetic exactly:
// - torch.linspace(start, end, n, float32): step = (end − start)/(n − 1) in float32; the first half counts
//   up from `start`, the second half down from `end`; the vectorised kernel (8 floats per AVX2 vector)
//   computes base = start + step·i (fused multiply-add) once per vector and base + k·step (fused) inside it;
// - betas = lin**2 (x·x in float32), alphas = 1 − betas (float32);
// - cumprod accumulates in float64 (torch's CPU accumulation type for float) and rounds each output to float32.
// This reproduces diffusers 0.27's alphas_cumprod for SD1.5's config bit for bit.
import { ArgumentError, FileFormatError } from '../errors.js';

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';

/** The fields of a diffusers scheduler_config.json that DDIM uses (camelCase). */
export interface SchedulerConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  trainedBetas: number[] | null;
  stepsOffset: number;
  setAlphaToOne: boolean;
  clipSample: boolean;
  clipSampleRange: number;
  predictionType: PredictionType;
  timestepSpacing: TimestepSpacing;
}

/** diffusers' DDIMScheduler constructor defaults (not SD's: build SD's from its config file). */
export const DDIM_DEFAULTS: SchedulerConfig = {
  numTrainTimesteps: 1000,
  betaStart: 0.0001,
  betaEnd: 0.02,
  betaSchedule: 'linear',
  trainedBetas: null,
  stepsOffset: 0,
  setAlphaToOne: true,
  clipSample: true,
  clipSampleRange: 1.0,
  predictionType: 'epsilon',
  timestepSpacing: 'leading',
};

/** A scheduler config that cannot be used; names its file (or '<scheduler config>' for an object in memory). */
export class SchedulerConfigError extends FileFormatError {
  constructor(problem: string, file = '<scheduler config>') {
    super(file, problem);
  }
}

/** More train timesteps than any real schedule (1000): a sign of a wrong value, not a schedule to allocate. */
const MAX_TRAIN_TIMESTEPS = 1_000_000;

function pick<T>(json: Record<string, unknown>, key: string, fallback: T, check: (v: unknown) => boolean, what: string): T {
  const v = json[key];
  if (v === undefined || v === null) return fallback;
  if (!check(v)) throw new SchedulerConfigError(`'${key}' must be ${what}, got ${JSON.stringify(v)}`);
  return v as T;
}

const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const isBool = (v: unknown) => typeof v === 'boolean';
const oneOf = (...xs: string[]) => (v: unknown) => typeof v === 'string' && xs.includes(v);

/** Parses a diffusers scheduler_config.json object (snake_case keys); missing keys take DDIMScheduler's defaults. */
export function parseSchedulerConfig(json: Record<string, unknown>): SchedulerConfig {
  const d = DDIM_DEFAULTS;
  const cfg: SchedulerConfig = {
    numTrainTimesteps: pick(json, 'num_train_timesteps', d.numTrainTimesteps, (v) => isNum(v) && Number.isInteger(v) && (v as number) > 0 && (v as number) <= MAX_TRAIN_TIMESTEPS, `a positive integer ≤ ${MAX_TRAIN_TIMESTEPS}`),
    betaStart: pick(json, 'beta_start', d.betaStart, isNum, 'a number'),
    betaEnd: pick(json, 'beta_end', d.betaEnd, isNum, 'a number'),
    betaSchedule: pick(json, 'beta_schedule', d.betaSchedule, oneOf('linear', 'scaled_linear', 'squaredcos_cap_v2'), "'linear', 'scaled_linear' or 'squaredcos_cap_v2'"),
    trainedBetas: pick(json, 'trained_betas', d.trainedBetas, (v) => Array.isArray(v) && v.every(isNum), 'a list of numbers'),
    stepsOffset: pick(json, 'steps_offset', d.stepsOffset, (v) => isNum(v) && Number.isInteger(v), 'an integer'),
    setAlphaToOne: pick(json, 'set_alpha_to_one', d.setAlphaToOne, isBool, 'a boolean'),
    clipSample: pick(json, 'clip_sample', d.clipSample, isBool, 'a boolean'),
    clipSampleRange: pick(json, 'clip_sample_range', d.clipSampleRange, isNum, 'a number'),
    predictionType: pick(json, 'prediction_type', d.predictionType, oneOf('epsilon', 'v_prediction', 'sample'), "'epsilon', 'v_prediction' or 'sample'"),
    timestepSpacing: pick(json, 'timestep_spacing', d.timestepSpacing, oneOf('leading', 'trailing', 'linspace'), "'leading', 'trailing' or 'linspace'"),
  };
  if (json.thresholding === true) throw new SchedulerConfigError('thresholding=true (dynamic thresholding) is not supported');
  if (json.rescale_betas_zero_snr === true) throw new SchedulerConfigError('rescale_betas_zero_snr=true is not supported');
  if (cfg.trainedBetas && cfg.trainedBetas.length !== cfg.numTrainTimesteps) {
    throw new SchedulerConfigError(`trained_betas has ${cfg.trainedBetas.length} values for ${cfg.numTrainTimesteps} train timesteps`);
  }
  return cfg;
}

const f = Math.fround;

/** torch.linspace(start, end, n, dtype=float32) on the CPU, bit for bit (see the file comment). */
export function torchLinspaceF32(start: number, end: number, n: number): Float32Array {
  const out = new Float32Array(n);
  if (n === 0) return out;
  const s = f(start);
  const e = f(end);
  if (n === 1) { out[0] = s; return out; }
  const step = f(f(e - s) / (n - 1));
  const half = Math.floor(n / 2);
  // step·i is exact in float64 (24-bit × < 31-bit), so one fround models the fused multiply-add.
  const at = (i: number) => (i < half ? f(s + step * i) : f(e - step * (n - i - 1)));
  const V = 8;
  let i = 0;
  for (; i + V <= n; i += V) {
    const base = at(i);
    out[i] = base;
    for (let k = 1; k < V; k++) out[i + k] = f(base + k * step);
  }
  for (; i < n; i++) out[i] = at(i);
  return out;
}

/** The float32 betas diffusers' schedulers build from a config. */
export function makeBetas(cfg: SchedulerConfig): Float32Array {
  const n = cfg.numTrainTimesteps;
  if (cfg.trainedBetas) return Float32Array.from(cfg.trainedBetas);
  switch (cfg.betaSchedule) {
    case 'linear':
      return torchLinspaceF32(cfg.betaStart, cfg.betaEnd, n);
    case 'scaled_linear': {
      const lin = torchLinspaceF32(Math.sqrt(cfg.betaStart), Math.sqrt(cfg.betaEnd), n);
      return lin.map((x) => f(x * x));
    }
    case 'squaredcos_cap_v2': {
      // betas_for_alpha_bar(cosine) in float64, then a float32 tensor.
      const ab = (t: number) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
      return Float32Array.from({ length: n }, (_, i) => Math.min(1 - ab((i + 1) / n) / ab(i / n), 0.999));
    }
  }
}

/** alphas = 1 − betas (float32) and their cumulative product (float64 accumulation, float32 outputs). */
export function makeAlphasCumprod(betas: Float32Array): { alphas: Float32Array; alphasCumprod: Float32Array } {
  const alphas = betas.map((b) => f(1 - b));
  const alphasCumprod = new Float32Array(betas.length);
  let acc = 1;
  for (let i = 0; i < alphas.length; i++) {
    acc *= alphas[i];
    alphasCumprod[i] = acc;
  }
  return { alphas, alphasCumprod };
}

/** numpy's round (half to even). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** DDIMScheduler.set_timesteps(n): the inference timesteps, largest first. */
export function ddimTimesteps(cfg: SchedulerConfig, n: number): number[] {
  const T = cfg.numTrainTimesteps;
  if (!Number.isInteger(n) || n < 1) throw new ArgumentError(`setTimesteps: the number of steps must be a positive integer, got ${n}`);
  if (n > T) throw new ArgumentError(`setTimesteps: ${n} steps exceed num_train_timesteps = ${T}`);
  switch (cfg.timestepSpacing) {
    case 'leading': {
      const r = Math.floor(T / n);
      return Array.from({ length: n }, (_, k) => (n - 1 - k) * r + cfg.stepsOffset);
    }
    case 'trailing': {
      // np.round(np.arange(T, 0, -T/n)) − 1
      const r = T / n;
      const len = Math.ceil(T / r);
      return Array.from({ length: len }, (_, i) => roundHalfEven(T + i * -r) - 1);
    }
    case 'linspace': {
      // np.linspace(0, T − 1, n).round()[::-1]
      const step = n > 1 ? (T - 1) / (n - 1) : 0;
      const lin = Array.from({ length: n }, (_, i) => (n > 1 && i === n - 1 ? T - 1 : i * step));
      return lin.map(roundHalfEven).reverse();
    }
  }
}
