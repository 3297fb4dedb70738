// The LPO trainer (LPO-SPEC §4.3): sample a prompt batch on-policy (the sampling U-Net IS the LoRA policy)
// → step-level pairs → one pass over them in mini-batches, one AdamW step each → the next prompt batch.
// Epochs walk a seeded shuffle of the prompt file. `algo: 'grpo'` trains step-wise GRPO on the same loop
// (groups of K instead of pairs). Everything random derives from (seed, iteration), so a checkpoint holds the
// LoRA, the optimizer state, the seed and the position, and resume() continues exactly.
//
// LPO-SPEC §9, where each note is honoured: 1 (candidates scored at t, threshold indexed by t), 2 (random
// continuation) and 12 (no decoding) in sampler.ts; 3 (softmax over max and min only) in select.ts; 4 (clamp
// before the log) in loss.ts; 5 (no gradient clipping by default) in update.ts; 7 (CFG 5 in both training
// passes) in cfg.ts; 11 (reference outputs recomputed for every mini-batch, pairs used once, on-policy) here and
// in update.ts. 6: we compute in float32 throughout (the authors: fp16 U-Nets, fp32 LoRA factors). 14–15: one
// process; the authors' 4-GPU global batch of 20 prompts is `sampleBatchSize` here (5 per GPU by default).
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { ArgumentError, LpoError } from '../errors.js';
import { noGrad } from '../autograd/tape.js';
import { keep, type Tensor } from '../tensor/tensor.js';
import type { DDIMScheduler } from '../diffusion/ddim.js';
import type { UNetLike } from '../diffusion/pipeline.js';
import { AdamW } from '../optim/adamw.js';
import { StepGuard } from '../optim/guard.js';
import { addLoRA, DEFAULT_LORA_TARGETS, loraLayers, loraParameters } from '../nn/lora.js';
import type { PolicyUNet } from './cfg.js';
import { CheckpointStore } from '../io/checkpoint/index.js';
import { loadCheckpoint, resolveCheckpoint, saveCheckpoint, CHECKPOINT_VERSION, type TrainerState } from './checkpoint.js';
import { appendMetrics, grpoRatioSummary, lpoRatioSummary, validRates, type IterationMetrics } from './metrics.js';
import { derivedGenerator, permutation, PromptSchedule } from './prompts.js';
import type { RewardModel } from './reward.js';
import { disposeStepwise, sampleStepwise, type StepGroup, type StepPair } from './sampler.js';
import { SD15_THRESHOLD, validateThresholdConfig, type ThresholdConfig } from './threshold.js';
import { grpoStep, lpoStep, type GrpoStepStats, type LpoStepStats, type UpdateContext } from './update.js';

export interface LpoTrainConfig {
  algo: 'lpo' | 'grpo';
  seed: number;
  epochs: number;
  /** Prompts sampled per iteration (the authors: 5 per GPU × 4 GPUs). */
  sampleBatchSize: number;
  /** Pairs (or groups) per optimizer step. */
  trainBatchSize: number;
  /** Pairs per forward pass inside one step (memory); default the whole step. */
  microBatch?: number;
  K: number;
  numInferenceSteps: number;
  guidanceScale: number;
  eta: number;
  beta: number;
  clipEps: number;
  grpoClip: number;
  klBeta: number;
  advEps: number;
  lr: number;
  weightDecay: number;
  adamBetas: [number, number];
  adamEps: number;
  /** Off by default: the authors' clip is a no-op (LPO-SPEC §9.5). */
  maxGradNorm?: number;
  loraRank: number;
  loraAlpha?: number;
  loraTargets: readonly string[];
  threshold: ThresholdConfig;
  /** Train only on steps with t in [lo, hi] (ablation). */
  timestepRange?: readonly [number, number];
  /** Latent height and width (default: the U-Net's sample_size). */
  latentSize?: readonly [number, number];
  /** Output folder (checkpoints go to <outDir>/checkpoints), checkpoint cadence in iterations, how many to keep; metrics file (JSONL). */
  outDir?: string;
  checkpointEvery?: number;
  keepCheckpoints?: number;
  metricsFile?: string;
  gradientCheckpointing?: boolean;
  /** Time each training phase on its own (waits for the GPU between phases). */
  syncPhases?: boolean;
  /** Optimizer steps in a row with NaN/Inf gradients (each skipped) that stop training (default 5). */
  maxNonFiniteSteps?: number;
}

/** LPO-SPEC §5.4, SD1.5 column (single process: 5 prompts per iteration, 10 pairs per step). */
export const LPO_SD15_CONFIG: LpoTrainConfig = {
  algo: 'lpo', seed: 42, epochs: 5, sampleBatchSize: 5, trainBatchSize: 10, K: 4, numInferenceSteps: 20,
  guidanceScale: 5, eta: 1, beta: 500, clipEps: 0.1, grpoClip: 0.1, klBeta: 0.1, advEps: 1e-4,
  lr: 6e-5, weightDecay: 1e-4, adamBetas: [0.9, 0.999], adamEps: 1e-8,
  loraRank: 4, loraTargets: DEFAULT_LORA_TARGETS, threshold: SD15_THRESHOLD,
};

export interface LpoModels {
  /** The base U-Net: adapters are added here unless it already has them. */
  unet: PolicyUNet & { readonly config: { inChannels: number; sampleSize?: number }; enableGradientCheckpointing?(on?: boolean): void };
  /** Text-encoder contexts [B, L, D] of prompts (StableDiffusionPipeline.encodePrompt). */
  encodePrompt(prompts: readonly string[]): Tensor;
  scheduler: DDIMScheduler;
  reward: RewardModel;
  /** A separate frozen reference U-Net (default: the policy with its LoRA bypassed). */
  reference?: UNetLike;
}

/** Settings that must be equal for a checkpoint to continue a run. */
function resumeKey(c: LpoTrainConfig): Record<string, unknown> {
  const { outDir: _o, checkpointEvery: _c, keepCheckpoints: _k, metricsFile: _m, syncPhases: _s, epochs: _e, microBatch: _mb, gradientCheckpointing: _g, maxNonFiniteSteps: _n, ...rest } = c;
  return JSON.parse(JSON.stringify(rest));
}

function validate(c: LpoTrainConfig): void {
  const posInt = (k: keyof LpoTrainConfig) => {
    if (!(Number.isInteger(c[k]) && (c[k] as number) >= 1)) throw new ArgumentError(`train-lpo: ${String(k)} must be a positive integer, got ${String(c[k])}`);
  };
  for (const k of ['epochs', 'sampleBatchSize', 'trainBatchSize', 'K', 'numInferenceSteps', 'loraRank'] as const) posInt(k);
  if (c.algo !== 'lpo' && c.algo !== 'grpo') throw new ArgumentError(`train-lpo: algo must be 'lpo' or 'grpo', got '${c.algo}'`);
  if (!(c.lr >= 0) || !(c.beta > 0) || !(c.clipEps > 0 && c.clipEps < 1)) throw new ArgumentError('train-lpo: lr ≥ 0, beta > 0 and 0 < clipEps < 1 are required');
  if (c.checkpointEvery !== undefined && !(Number.isInteger(c.checkpointEvery) && c.checkpointEvery >= 1)) throw new ArgumentError('train-lpo: checkpointEvery must be a positive integer');
  validateThresholdConfig(c.threshold);
}

export class LpoTrainer {
  readonly config: LpoTrainConfig;
  readonly schedule: PromptSchedule;
  readonly optimizer: AdamW;
  /** Skips optimizer steps with NaN/Inf gradients and stops after maxNonFiniteSteps in a row. */
  readonly guard: StepGuard;
  /** Iterations completed. */
  iteration = 0;
  optimizerSteps = 0;
  private readonly uncond: Tensor;
  private store: CheckpointStore | null = null;
  private readonly latentShape: [number, number, number];

  constructor(readonly models: LpoModels, readonly prompts: readonly string[], config: Partial<LpoTrainConfig> = {}) {
    this.config = { ...LPO_SD15_CONFIG, ...config };
    validate(this.config);
    const c = this.config;
    this.schedule = new PromptSchedule(prompts, c.sampleBatchSize, c.seed);
    const unet = models.unet;
    if (loraLayers(unet).length === 0) {
      addLoRA(unet, { rank: c.loraRank, alpha: c.loraAlpha, targets: c.loraTargets, init: 'gaussian', gen: derivedGenerator(c.seed, 0, 0) });
    }
    if (c.gradientCheckpointing) unet.enableGradientCheckpointing?.(true);
    this.optimizer = new AdamW(loraParameters(unet), { lr: c.lr, weightDecay: c.weightDecay, betas: c.adamBetas, eps: c.adamEps });
    this.guard = new StepGuard({ maxConsecutive: c.maxNonFiniteSteps ?? 5 });
    const size = c.latentSize ?? [unet.config.sampleSize ?? 64, unet.config.sampleSize ?? 64];
    this.latentShape = [unet.config.inChannels, size[0], size[1]];
    this.uncond = keep(noGrad(() => models.encodePrompt([''])));
  }

  /** Iterations in the whole run (epochs × batches per epoch). */
  get totalIterations(): number {
    return this.config.epochs * this.schedule.batchesPerEpoch;
  }

  get done(): boolean {
    return this.iteration >= this.totalIterations;
  }

  state(): TrainerState {
    return {
      version: CHECKPOINT_VERSION, algo: this.config.algo, iteration: this.iteration, position: this.schedule.position(this.iteration),
      optimizerSteps: this.optimizerSteps, seed: this.config.seed, rng: 'derived(seed, iteration)', config: resumeKey(this.config), numPrompts: this.prompts.length,
    };
  }

  /** The checkpoint store: <outDir>/checkpoints, one folder per iteration, the newest `keepCheckpoints` kept. */
  get checkpointRoot(): string {
    return join(this.config.outDir ?? '.', 'checkpoints');
  }

  /** Saves a checkpoint of the current iteration; returns its folder. */
  async saveCheckpoint(): Promise<string> {
    this.store ??= new CheckpointStore(this.checkpointRoot, { keep: this.config.keepCheckpoints ?? 3 });
    return saveCheckpoint(this.store, this.models.unet, this.optimizer, this.state());
  }

  /**
   * Continues from a checkpoint: one checkpoint folder, or a store root (its newest complete checkpoint). The same
   * settings and prompt file are required. Returns the folder used.
   */
  async resume(path: string, warn?: (msg: string) => void): Promise<string> {
    const dir = resolveCheckpoint(path, warn);
    const s = await loadCheckpoint(dir, this.models.unet, this.optimizer);
    const want = resumeKey(this.config);
    const diff = Object.keys({ ...want, ...s.config }).filter((k) => JSON.stringify(want[k]) !== JSON.stringify(s.config[k]));
    if (diff.length) throw new LpoError(`resume: the checkpoint in ${dir} was made with different settings (${diff.join(', ')})`);
    if (s.numPrompts !== this.prompts.length) throw new LpoError(`resume: the checkpoint's prompt file had ${s.numPrompts} prompts, this one has ${this.prompts.length}`);
    this.iteration = s.iteration;
    this.optimizerSteps = s.optimizerSteps;
    return dir;
  }

  private updateContext(cond: Tensor): UpdateContext {
    const c = this.config;
    return {
      policy: this.models.unet, scheduler: this.models.scheduler, optimizer: this.optimizer, cond, uncond: this.uncond,
      guidanceScale: c.guidanceScale, eta: c.eta, beta: c.beta, clipEps: c.clipEps, grpoClip: c.grpoClip, klBeta: c.klBeta,
      advEps: c.advEps, maxGradNorm: c.maxGradNorm, microBatch: c.microBatch, reference: this.models.reference, syncPhases: c.syncPhases, guard: this.guard,
    };
  }

  /** Runs one iteration (sampling + one pass of updates) and returns its metrics. */
  async step(): Promise<IterationMetrics> {
    if (this.done) throw new LpoError(`train-lpo: all ${this.totalIterations} iterations are done`);
    const c = this.config;
    const t0 = performance.now();
    const pos = this.schedule.position(this.iteration);
    const prompts = this.schedule.batch(pos);
    const gen = derivedGenerator(c.seed, 2, this.iteration);
    const cond = noGrad(() => this.models.encodePrompt(prompts));
    const sample = await sampleStepwise(
      { unet: this.models.unet, scheduler: this.models.scheduler, reward: this.models.reward, prompts, cond, uncond: this.uncond, latents: this.latentShape, gen },
      { numInferenceSteps: c.numInferenceSteps, guidanceScale: c.guidanceScale, eta: c.eta, K: c.K, threshold: c.threshold, timestepRange: c.timestepRange, collect: c.algo === 'lpo' ? 'pairs' : 'groups' },
    );
    const tSample = (performance.now() - t0) / 1000;
    const lpoStats: LpoStepStats[] = [];
    const grpoStats: GrpoStepStats[] = [];
    try {
      // The authors shuffle the gathered pairs with one random permutation, then cut mini-batches.
      const items: (StepPair | StepGroup)[] = c.algo === 'lpo' ? sample.pairs : sample.groups;
      const order = permutation(items.length, gen).map((i) => items[i]);
      const ctx = this.updateContext(cond);
      for (let i = 0; i < order.length; i += c.trainBatchSize) {
        const part = order.slice(i, i + c.trainBatchSize);
        if (c.algo === 'lpo') lpoStats.push(await lpoStep(ctx, part as StepPair[]));
        else grpoStats.push(await grpoStep(ctx, part as StepGroup[]));
        this.optimizerSteps++;
      }
    } finally {
      cond.dispose();
    }
    const m = this.metrics(pos, prompts.length, sample, lpoStats, grpoStats, tSample, (performance.now() - t0) / 1000);
    disposeStepwise(sample);
    this.iteration++;
    if (c.metricsFile) appendMetrics(c.metricsFile, m);
    if (c.checkpointEvery && (this.iteration % c.checkpointEvery === 0 || this.done)) await this.saveCheckpoint();
    return m;
  }

  /** Runs iterations until the run is done (or `maxIterations` more have run); calls onIteration after each. */
  async train(opts: { maxIterations?: number; onIteration?: (m: IterationMetrics) => void | Promise<void> } = {}): Promise<void> {
    const stop = opts.maxIterations === undefined ? this.totalIterations : Math.min(this.totalIterations, this.iteration + opts.maxIterations);
    while (this.iteration < stop) {
      const m = await this.step();
      await opts.onIteration?.(m);
    }
  }

  private metrics(
    pos: { epoch: number; batch: number }, nPrompts: number, s: Awaited<ReturnType<typeof sampleStepwise>>,
    lpo: LpoStepStats[], grpo: GrpoStepStats[], tSample: number, total: number,
  ): IterationMetrics {
    const c = this.config;
    const rates = validRates(s);
    const steps = c.algo === 'lpo' ? lpo : grpo;
    const sum = (f: (x: LpoStepStats | GrpoStepStats) => number) => steps.reduce((a, x) => a + f(x), 0);
    const r = c.algo === 'lpo' ? { ...lpoRatioSummary(lpo, c.clipEps), kl: null } : grpoRatioSummary(grpo, c.grpoClip);
    const margins = s.pairs.map((p) => p.scoreW - p.scoreL);
    const items = c.algo === 'lpo' ? s.pairs.length : s.groups.length;
    const all = s.steps.map((x) => x.meanScore);
    return {
      iteration: this.iteration, epoch: pos.epoch, batch: pos.batch, algo: c.algo, prompts: nPrompts, items,
      validRate: rates.overall, validRateByT: rates.byT,
      rewardMargin: margins.length ? margins.reduce((a, b) => a + b, 0) / margins.length : null,
      meanScore: all.reduce((a, b) => a + b, 0) / Math.max(all.length, 1),
      finalScore: s.finalScores.reduce((a, b) => a + b, 0) / Math.max(s.finalScores.length, 1),
      optimizerSteps: steps.length, loss: steps.length ? sum((x) => x.loss) / steps.length : null,
      ratio: r.ratio, clampedFraction: r.clamped, kl: r.kl,
      seconds: {
        sample: tSample, reference: sum((x) => x.times.reference), policy: sum((x) => x.times.policy),
        backward: sum((x) => x.times.backward), optimizer: sum((x) => x.times.optimizer), total,
      },
      itemsPerSecond: total > 0 ? items / total : 0,
    };
  }

  /** Frees the trainer's own tensors (the optimizer state, the encoded ""); the models stay the caller's. */
  dispose(): void {
    this.optimizer.dispose();
    this.uncond.dispose();
  }
}
