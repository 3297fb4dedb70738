// DDIM (diffusers' DDIMScheduler) with the per-step Gaussian log-probability of DDPO/SPO/LPO.
//
// The per-batch scalars (ᾱ_t, ᾱ_prev, σ_t and the linear coefficients of x̂0 and μ in x_t and the model
// output) are computed on the host in float64 from the float32 alphas_cumprod, and the tensor math is a few
// broadcasting GPU elementwise ops, so it is differentiable with respect to the model output (LPO needs
// ∂ log π / ∂ ε̂). STEP-DPO-REFS §2.3–2.4 and LPO-SPEC §4.1, §5.1 give the formulas.
import { readFileSync } from 'node:fs';
import { LpoError, ShapeError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { add, maximum, minimum, mul, scale, square, sub } from '../tensor/ops/elementwise.js';
import { mean as meanAxis } from '../tensor/ops/reduce.js';
import { reshape } from '../tensor/ops/layout.js';
import {
  ddimTimesteps, makeAlphasCumprod, makeBetas, parseSchedulerConfig, SchedulerConfigError, type SchedulerConfig,
} from './schedule.js';

/** log √(2π) */
export const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

export interface StepOptions {
  /** η: 0 is deterministic DDIM, 1 the DDPM-like posterior (LPO samples with 1). */
  eta?: number;
  /** z for x' = μ + σ_t z (same shape as the sample); drawn from `generator` when absent and η > 0. */
  varianceNoise?: Tensor;
  /** Source of z; default the scheduler's own `generator` (seeded 0). */
  generator?: Generator;
}

export interface StepWithLogProbOptions extends StepOptions {
  /** An observed x_{t−1} to score (LPO's stored winner/loser); otherwise x' = μ + σ_t z is drawn. */
  prevSample?: Tensor;
}

export interface StepOutput {
  prevSample: Tensor;
  predOriginalSample: Tensor;
}

export interface StepWithLogProbOutput extends StepOutput {
  /** μ_θ(x_t, t): the mean of x_{t−1}. */
  mean: Tensor;
  /** σ_t per batch item. */
  stdDevT: number[];
  /** [B] per-element mean log-density of prevSample under N(μ, σ_t² I). */
  logProb: Tensor;
}

/** The host-side float64 scalars of one DDIM step for one batch item. */
export interface StepScalars {
  t: number;
  prevT: number;
  alphaProdT: number;
  alphaProdTPrev: number;
  /** (1−ᾱ_prev)/(1−ᾱ_t)·(1 − ᾱ_t/ᾱ_prev) */
  variance: number;
  stdDevT: number;
  /** x̂0 = x0X·x_t + x0Out·out */
  x0X: number;
  x0Out: number;
  /** ε̂ = epsX·x_t + epsOut·out */
  epsX: number;
  epsOut: number;
  /** √(1 − ᾱ_prev − σ²): the coefficient of ε̂ in μ. */
  dirCoef: number;
  /** μ = meanX·x_t + meanOut·out (without clipping). */
  meanX: number;
  meanOut: number;
}

function configFrom(config: SchedulerConfig | Record<string, unknown>): SchedulerConfig {
  return 'numTrainTimesteps' in config ? (config as SchedulerConfig) : parseSchedulerConfig(config);
}

export class DDIMScheduler {
  readonly config: SchedulerConfig;
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  readonly alphasCumprod: Float32Array;
  /** ᾱ used when prev_t < 0: 1 with set_alpha_to_one, else ᾱ_0. */
  readonly finalAlphaCumprod: number;
  readonly initNoiseSigma = 1;
  numInferenceSteps: number | null = null;
  timesteps: number[] = [];
  /**
   * Draws the variance noise when a step gets neither `varianceNoise` nor `generator`: seeded 0 per scheduler,
   * so a default run is reproducible (as torch's default generator is at start-up) and two schedulers do not
   * share a stream. Pass a generator (or reseed this one) to choose the noise.
   */
  readonly generator = new Generator(0);

  /** From a SchedulerConfig or a parsed diffusers scheduler_config.json object. */
  constructor(config: SchedulerConfig | Record<string, unknown>) {
    this.config = configFrom(config);
    this.betas = makeBetas(this.config);
    const { alphas, alphasCumprod } = makeAlphasCumprod(this.betas);
    this.alphas = alphas;
    this.alphasCumprod = alphasCumprod;
    this.finalAlphaCumprod = this.config.setAlphaToOne ? 1 : alphasCumprod[0];
  }

  static fromConfig(json: Record<string, unknown>): DDIMScheduler {
    return new DDIMScheduler(parseSchedulerConfig(json));
  }

  /** Reads a diffusers scheduler_config.json (a file or the folder holding it). */
  static fromFile(path: string): DDIMScheduler {
    let text: string;
    const file = path.endsWith('.json') ? path : `${path.replace(/\/$/, '')}/scheduler_config.json`;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new SchedulerConfigError(`cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, file);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new SchedulerConfigError(`not valid JSON: ${(e as Error).message}`, file);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new SchedulerConfigError('not a JSON object', file);
    try {
      return DDIMScheduler.fromConfig(json as Record<string, unknown>);
    } catch (e) {
      if (e instanceof SchedulerConfigError) throw new SchedulerConfigError(e.problem, file);
      throw e;
    }
  }

  /** set_timesteps(n): fills `timesteps` (largest first) and returns it. */
  setTimesteps(n: number): number[] {
    this.timesteps = ddimTimesteps(this.config, n);
    this.numInferenceSteps = n;
    return this.timesteps;
  }

  /** DDIM's input scaling is the identity. */
  scaleModelInput(sample: Tensor): Tensor {
    return sample;
  }

  private checkT(t: number, what = 'timestep'): void {
    if (!Number.isInteger(t) || t < 0 || t >= this.config.numTrainTimesteps) {
      throw new LpoError(`DDIM: ${what} ${t} must be an integer in [0, ${this.config.numTrainTimesteps})`);
    }
  }

  /** prev_t = t − T // n (arithmetic, as diffusers; may be negative). */
  prevTimestep(t: number): number {
    if (this.numInferenceSteps === null) throw new LpoError('DDIM: call setTimesteps(n) before stepping');
    return t - Math.floor(this.config.numTrainTimesteps / this.numInferenceSteps);
  }

  /** ᾱ_t, or the final ᾱ for t < 0. */
  alphaProd(t: number): number {
    if (t < 0) return this.finalAlphaCumprod;
    this.checkT(t);
    return this.alphasCumprod[t];
  }

  variance(t: number, prevT: number): number {
    const a = this.alphaProd(t);
    const ap = this.alphaProd(prevT);
    return ((1 - ap) / (1 - a)) * (1 - a / ap);
  }

  /** σ_t = η·√variance. */
  stdDevT(t: number, prevT: number = this.prevTimestep(t), eta = 0): number {
    return eta * Math.sqrt(this.variance(t, prevT));
  }

  /** Every float64 scalar of a step at timestep t. */
  stepScalars(t: number, eta = 0): StepScalars {
    this.checkT(t);
    const prevT = this.prevTimestep(t);
    const a = this.alphaProd(t);
    const ap = this.alphaProd(prevT);
    const variance = ((1 - ap) / (1 - a)) * (1 - a / ap);
    const std = eta * Math.sqrt(variance);
    const sa = Math.sqrt(a);
    const sb = Math.sqrt(1 - a);
    let x0X: number, x0Out: number, epsX: number, epsOut: number;
    switch (this.config.predictionType) {
      case 'epsilon':
        x0X = 1 / sa; x0Out = -sb / sa; epsX = 0; epsOut = 1;
        break;
      case 'v_prediction':
        x0X = sa; x0Out = -sb; epsX = sb; epsOut = sa;
        break;
      case 'sample':
        x0X = 0; x0Out = 1; epsX = 1 / sb; epsOut = -sa / sb;
        break;
    }
    const dirSq = 1 - ap - std * std;
    if (dirSq < -1e-12) throw new LpoError(`DDIM: 1 − ᾱ_prev − σ² = ${dirSq} < 0 at t = ${t} (η = ${eta} too large)`);
    const dirCoef = Math.sqrt(Math.max(dirSq, 0));
    const sap = Math.sqrt(ap);
    return {
      t, prevT, alphaProdT: a, alphaProdTPrev: ap, variance, stdDevT: std,
      x0X, x0Out, epsX, epsOut, dirCoef,
      meanX: sap * x0X + dirCoef * epsX,
      meanOut: sap * x0Out + dirCoef * epsOut,
    };
  }

  /** stepScalars for each batch item (one timestep, or one per item). */
  batchStepScalars(t: number | readonly number[], batch: number, eta: number): StepScalars[] {
    const ts = typeof t === 'number' ? new Array<number>(batch).fill(t) : [...t];
    if (ts.length === 1 && batch > 1) while (ts.length < batch) ts.push(ts[0]);
    if (ts.length !== batch) throw new ShapeError(`DDIM step: ${ts.length} timesteps for a batch of ${batch}`);
    return ts.map((ti) => this.stepScalars(ti, eta));
  }

  /**
   * DDIMScheduler.step: x̂0 and x_{t−1} = μ + σ_t z (z only when η > 0). `t` is one timestep or one per
   * batch item (DDPO's batched form).
   */
  step(modelOutput: Tensor, t: number | readonly number[], sample: Tensor, opts: StepOptions = {}): StepOutput {
    const { prevSample, predOriginalSample, mean: mu } = this.stepInternal(modelOutput, t, sample, opts, undefined);
    if (mu !== prevSample) mu.dispose();
    return { prevSample, predOriginalSample };
  }

  /** The step plus log π(x_{t−1} | x_t) (DDPO's ddim_step_with_logprob); needs η > 0. */
  stepWithLogProb(modelOutput: Tensor, t: number | readonly number[], sample: Tensor, opts: StepWithLogProbOptions = {}): StepWithLogProbOutput {
    const eta = opts.eta ?? 0;
    if (!(eta > 0)) throw new LpoError(`DDIM stepWithLogProb: η must be > 0 (σ_t = 0 has no density), got ${eta}`);
    const r = this.stepInternal(modelOutput, t, sample, opts, opts.prevSample);
    const logProb = ddimLogProb(r.prevSample, r.mean, r.stdDevT);
    return { prevSample: r.prevSample, predOriginalSample: r.predOriginalSample, mean: r.mean, stdDevT: r.stdDevT, logProb };
  }

  private stepInternal(modelOutput: Tensor, t: number | readonly number[], sample: Tensor, opts: StepOptions, observed: Tensor | undefined) {
    const eta = opts.eta ?? 0;
    if (!(eta >= 0) || !Number.isFinite(eta)) throw new LpoError(`DDIM step: η must be ≥ 0, got ${eta}`);
    sameShape('DDIM step', modelOutput, sample, 'model output', 'sample');
    if (sample.rank < 1) throw new ShapeError('DDIM step: the sample needs a batch dimension');
    if (opts.varianceNoise) sameShape('DDIM step', opts.varianceNoise, sample, 'variance noise', 'sample');
    if (observed) sameShape('DDIM step', observed, sample, 'prev sample', 'sample');
    const B = sample.shape[0];
    const sc = this.batchStepScalars(t, B, eta);
    const stdDevT = sc.map((s) => s.stdDevT);
    const out = tidy(() => {
      const x0 = lincomb(sample, sc.map((s) => s.x0X), modelOutput, sc.map((s) => s.x0Out));
      let mu: Tensor;
      if (this.config.clipSample) {
        const r = this.config.clipSampleRange;
        const lo = Tensor.fromArray([-r], [1]);
        const hi = Tensor.fromArray([r], [1]);
        const x0c = minimum(maximum(x0, lo), hi);
        // diffusers keeps ε̂ from the unclipped x̂0 (use_clipped_model_output = False).
        const eps = lincomb(sample, sc.map((s) => s.epsX), modelOutput, sc.map((s) => s.epsOut));
        mu = lincomb(x0c, sc.map((s) => Math.sqrt(s.alphaProdTPrev)), eps, sc.map((s) => s.dirCoef));
        return { x0: x0c, mu };
      }
      mu = lincomb(sample, sc.map((s) => s.meanX), modelOutput, sc.map((s) => s.meanOut));
      return { x0, mu };
    });
    let prev: Tensor;
    if (observed) {
      prev = observed.view(observed.shape); // detached
    } else if (eta > 0) {
      prev = tidy(() => {
        const z = opts.varianceNoise ?? Tensor.randn(sample.shape, opts.generator ?? this.generator);
        return add(out.mu, scaleBatch(z, stdDevT));
      });
    } else {
      prev = out.mu;
    }
    return { prevSample: prev, predOriginalSample: out.x0, mean: out.mu, stdDevT };
  }

  /** add_noise: √ᾱ_t·x0 + √(1−ᾱ_t)·noise with one timestep per batch item (or one for all). */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: number | readonly number[]): Tensor {
    sameShape('DDIM addNoise', noise, originalSamples, 'noise', 'original samples');
    const B = originalSamples.shape[0] ?? 1;
    const ts = typeof timesteps === 'number' ? [timesteps] : [...timesteps];
    if (ts.length !== 1 && ts.length !== B) throw new ShapeError(`DDIM addNoise: ${ts.length} timesteps for a batch of ${B}`);
    for (const ti of ts) this.checkT(ti);
    const per = ts.length === 1 ? new Array<number>(B).fill(ts[0]) : ts;
    const a = per.map((ti) => this.alphasCumprod[ti]);
    return tidy(() => lincomb(originalSamples, a.map(Math.sqrt), noise, a.map((x) => Math.sqrt(1 - x))));
  }

  /** get_velocity: the v-prediction target √ᾱ_t·noise − √(1−ᾱ_t)·x0. */
  getVelocity(sample: Tensor, noise: Tensor, timesteps: number | readonly number[]): Tensor {
    sameShape('DDIM getVelocity', noise, sample, 'noise', 'sample');
    const B = sample.shape[0] ?? 1;
    const ts = typeof timesteps === 'number' ? new Array<number>(B).fill(timesteps) : [...timesteps];
    if (ts.length !== B) throw new ShapeError(`DDIM getVelocity: ${ts.length} timesteps for a batch of ${B}`);
    for (const ti of ts) this.checkT(ti);
    const a = ts.map((ti) => this.alphasCumprod[ti]);
    return tidy(() => lincomb(noise, a.map(Math.sqrt), sample, a.map((x) => -Math.sqrt(1 - x))));
  }
}

/**
 * log π(x' | x_t) per batch item: the MEAN over every non-batch element of
 * −(x' − μ)²/(2σ²) − log σ − log √(2π) (DDPO/SPO/LPO; LPO-SPEC §5.1). x' is treated as a constant
 * (detached); the result is differentiable with respect to μ. Returns [B].
 */
export function ddimLogProb(prevSample: Tensor, mean: Tensor, stdDevT: number | readonly number[]): Tensor {
  sameShape('ddimLogProb', prevSample, mean, 'prev sample', 'mean');
  if (mean.rank < 1) throw new ShapeError('ddimLogProb: the tensors need a batch dimension');
  const B = mean.shape[0];
  const sig = typeof stdDevT === 'number' ? new Array<number>(B).fill(stdDevT) : [...stdDevT];
  if (sig.length !== B) throw new ShapeError(`ddimLogProb: ${sig.length} std devs for a batch of ${B}`);
  for (const s of sig) if (!(s > 0) || !Number.isFinite(s)) throw new LpoError(`ddimLogProb: σ_t must be > 0 (η > 0), got ${s}`);
  const D = mean.size / Math.max(B, 1);
  return tidy(() => {
    const x = prevSample.view(prevSample.shape); // detached: no tape node, no grad
    const d = sub(x, mean);
    const sq = square(d);
    const m = meanAxis(reshape(sq, [B, D]), 1);
    // −m/(2σ²) − log σ − log √(2π)
    const c = Tensor.fromArray(sig.map((s) => -Math.log(s) - LOG_SQRT_2PI), [B]);
    return add(scaleBatch(m, sig.map((s) => -1 / (2 * s * s))), c);
  });
}

/** Float64 CPU reference of ddimLogProb (for tests and checks). */
export function ddimLogProbRef(prevSample: ArrayLike<number>, mean: ArrayLike<number>, stdDevT: readonly number[]): Float64Array {
  const B = stdDevT.length;
  const D = mean.length / B;
  const out = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const s = stdDevT[b];
    let acc = 0;
    for (let i = 0; i < D; i++) {
      const d = prevSample[b * D + i] - mean[b * D + i];
      acc += -(d * d) / (2 * s * s) - Math.log(s) - LOG_SQRT_2PI;
    }
    out[b] = acc / D;
  }
  return out;
}

function sameShape(op: string, a: Tensor, b: Tensor, an: string, bn: string): void {
  if (a.shape.join() !== b.shape.join()) throw new ShapeError(`${op}: ${an} [${a.shape}] and ${bn} [${b.shape}] must have the same shape`);
}

/** x·c[b] with one coefficient per batch item (a scalar affine when they are all equal). */
export function scaleBatch(x: Tensor, c: readonly number[]): Tensor {
  if (c.every((v) => v === c[0])) return scale(x, c[0]);
  const shape = [c.length, ...new Array<number>(Math.max(x.rank - 1, 0)).fill(1)];
  return mul(x, Tensor.fromArray(c, shape));
}

/** a·ca[b] + b·cb[b] per batch item; terms with all-zero coefficients are skipped (the result is always a new, recorded tensor). */
function lincomb(a: Tensor, ca: readonly number[], b: Tensor, cb: readonly number[]): Tensor {
  const za = ca.every((v) => v === 0);
  const zb = cb.every((v) => v === 0);
  if (za && zb) return scale(a, 0);
  if (za) return scaleBatch(b, cb);
  if (zb) return scaleBatch(a, ca);
  return add(scaleBatch(a, ca), scaleBatch(b, cb));
}
