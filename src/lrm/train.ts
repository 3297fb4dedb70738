// LRM training (LPO-SPEC §2): pairs → clean latents → one t per pair from {1, 51, …, 951} → independent noise per
// image → pair loss with ties and 1/n weights over the global batch → AdamW (weight decay 0.3 on every parameter,
// τ included) over the truncated U-Net, the text encoder, both projections and τ, DeepSpeed's log warm-up then
// linear decay, gradient clipping 1.0 → held-out accuracy at t = 1 (and per timestep) → the best-on-validation
// checkpoint and a final one.
//
// A global batch is processed as micro-batches whose gradients accumulate (the weights w_i are normalised over the
// global batch and every draw is made per pair), so any micro-batch size gives the same update as one big batch.
//
// Reliability: every optimizer step goes through a StepGuard (one flag for the gradients' finiteness, read back with
// the gradient norm; a NaN step is skipped, N in a row stop the run), and with `checkpointEvery` the run keeps
// training checkpoints (src/lrm/checkpoint.ts) from which `resume` continues exactly.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArgumentError } from '../errors.js';
import { backward } from '../autograd/tape.js';
import { AdamW, clipGradNorm } from '../optim/adamw.js';
import { StepGuard } from '../optim/guard.js';
import { CheckpointStore, MANIFEST_FILE } from '../io/checkpoint/index.js';
import type { DDIMScheduler } from '../diffusion/ddim.js';
import type { PairDataset, PairMeta, PairRow } from '../io/pairs/types.js';
import type { AutoencoderKL } from '../nn/vae.js';
import { cleanLatents, noisyLatents, PairDraws, pairPrompts } from './batch.js';
import { accuracyAt, evaluateLrm, type LrmEvalResult } from './eval.js';
import { pairAccuracy, pairLoss, pairWeights } from './loss.js';
import type { LatentRewardModel } from './model.js';
import { lrmScheduler } from './noise.js';
import { LRM_TIMESTEPS, warmupDecayLr } from './schedule.js';
import { loadLrmCheckpoint, saveLrmCheckpoint, type StreamPosition } from './checkpoint.js';

export interface TrainLrmOptions {
  /** Optimizer steps (max_steps; 4000 for LRM-1.5). */
  steps: number;
  /** Pairs per optimizer step (the global batch; 128). */
  batchSize?: number;
  /** Pairs per forward/backward pass (default: the whole batch); gradients accumulate over micro-batches. */
  microBatch?: number;
  /** Peak learning rate (1e-5). */
  lr?: number;
  /** Log warm-up steps (500). */
  warmupSteps?: number;
  /** AdamW weight decay on every parameter, τ included (0.3). */
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  /** Gradient clipping max norm (1.0; 0 disables). */
  maxGradNorm?: number;
  /** Candidate training timesteps (default {1, 51, …, 951}). */
  timesteps?: readonly number[];
  /** Seed of the data order and every draw (42). */
  seed?: number;
  /** Train the text encoder (default true: freeze_text_encoder = False). */
  trainTextEncoder?: boolean;
  /** Gradient checkpointing in the U-Net's resnets and transformers. */
  gradientCheckpointing?: boolean;
  /** Validation every this many steps, plus before the first and after the last (100; 0: only those two). */
  evalEvery?: number;
  /** Timesteps of each validation (default [1]; accuracy at t = 1 picks the best checkpoint). */
  evalTimesteps?: readonly number[];
  /** Timesteps of the validations before the first and after the last step (default: evalTimesteps). */
  edgeEvalTimesteps?: readonly number[];
  /** Validation pairs per forward pass. */
  evalBatch?: number;
  /** At most this many validation pairs per evaluation. */
  evalMaxPairs?: number;
  /** Checkpoints: <outDir>/best (best validation accuracy at t = 1) and <outDir>/final. */
  outDir?: string;
  /** Metrics as JSON lines (one per step, one per evaluation). */
  metricsFile?: string;
  /** Encodes rows that carry images but no latents (frozen). */
  vae?: AutoencoderKL;
  /** Noise schedule (default: the model's scheduler config, else SD's). */
  scheduler?: DDIMScheduler;
  /** Keeps a training row (e.g. an MPCF filter). */
  where?: (meta: PairMeta) => boolean;
  onStep?: (m: StepMetrics) => void;
  onEval?: (e: EvalRecord) => void;
  /** Training checkpoints (model, AdamW state, step, random streams, data position) every n steps and at the end, into <outDir>/checkpoints (0: none). */
  checkpointEvery?: number;
  /** Training checkpoints kept (the newest; default 3). */
  keepCheckpoints?: number;
  /** Continue from the newest checkpoint in <outDir>/checkpoints that verifies (true), or from this checkpoint folder. */
  resume?: boolean | string;
  /** Steps in a row with NaN/Inf gradients (each skipped) that stop training (default 5). */
  maxNonFiniteSteps?: number;
  /** The step guard (default: a StepGuard with maxNonFiniteSteps; tests pass their own). */
  guard?: StepGuard;
  /** Where notes go (a corrupted checkpoint skipped on resume; a skipped step). Default: stderr. */
  log?: (message: string) => void;
}

export interface StepMetrics {
  step: number;
  loss: number;
  /** Accuracy on the step's own batch (noisy, at its random timesteps). */
  batchAccuracy: number;
  lr: number;
  gradNorm: number;
  pairsPerSecond: number;
  elapsedSeconds: number;
}

export interface EvalRecord extends LrmEvalResult {
  /** Optimizer steps taken when it ran. */
  step: number;
  /** Accuracy at t = 1 (undefined if t = 1 was not evaluated). */
  accuracyT1?: number;
  /** A new best checkpoint was saved. */
  best: boolean;
}

export interface TrainLrmResult {
  steps: number;
  evals: EvalRecord[];
  best: EvalRecord | null;
  seconds: number;
}

/**
 * Endless pairs: the dataset's passes one after another, each in a seeded order (seed + epoch), starting at `pos`
 * (rows of that pass already taken are skipped); `pos` is kept up to date as rows are taken (checkpoints save it).
 */
async function* pairStream(data: PairDataset, seed: number, opts: { images: boolean; where?: (m: PairMeta) => boolean }, pos: StreamPosition): AsyncGenerator<PairRow> {
  for (; ; pos.epoch++, pos.consumed = 0) {
    let n = 0;
    const skip = pos.consumed;
    for await (const r of data.rows({ images: opts.images, latents: true, where: opts.where, shuffleSeed: seed + pos.epoch })) {
      n++;
      if (n <= skip) continue;
      pos.consumed = n;
      yield r;
    }
    if (!n) throw new ArgumentError(`trainLrm: '${data.source}' yielded no training pairs`);
  }
}

function appendJsonl(file: string | undefined, obj: Record<string, unknown>): void {
  if (file) fs.appendFileSync(file, `${JSON.stringify(obj)}\n`);
}

function checkOptions(o: TrainLrmOptions): Required<Pick<TrainLrmOptions, 'batchSize' | 'microBatch'>> {
  const batchSize = o.batchSize ?? 128;
  const microBatch = o.microBatch ?? batchSize;
  const posInt = (v: number, what: string) => {
    if (!Number.isInteger(v) || v < 1) throw new ArgumentError(`trainLrm: ${what} must be a positive integer, got ${v}`);
  };
  posInt(o.steps, 'steps');
  posInt(batchSize, 'batchSize');
  posInt(microBatch, 'microBatch');
  if (microBatch > batchSize) throw new ArgumentError(`trainLrm: microBatch ${microBatch} > batchSize ${batchSize}`);
  if (o.lr !== undefined && !(o.lr >= 0)) throw new ArgumentError(`trainLrm: lr must be ≥ 0, got ${o.lr}`);
  if (o.timesteps && !o.timesteps.length) throw new ArgumentError('trainLrm: no training timesteps');
  return { batchSize, microBatch };
}

/**
 * One optimizer step's gradients: the pair loss of `rows` (the global batch) accumulated over micro-batches into
 * the parameters' .grad. Returns the batch loss and the batch accuracy. Exported for the accumulation test.
 */
export async function accumulatePairGradients(
  model: LatentRewardModel,
  rows: readonly PairRow[],
  env: { microBatch: number; timesteps: readonly number[]; draws: PairDraws; scheduler: DDIMScheduler; vae?: AutoencoderKL },
): Promise<{ loss: number; accuracy: number }> {
  const weights = pairWeights(rows.map((r) => r.numExamplesPerPrompt));
  const c = model.unet.config;
  const src = { vae: env.vae, latentShape: [c.inChannels, model.config.sampleSize, model.config.sampleSize] as const, scalingFactor: model.config.scalingFactor };
  let loss = 0;
  let acc = 0;
  for (let s = 0; s < rows.length; s += env.microBatch) {
    const micro = rows.slice(s, s + env.microBatch);
    const ts = env.draws.timesteps(micro.length, env.timesteps);
    const z0 = cleanLatents(micro, src, env.draws);
    const x = noisyLatents(z0, ts, env.scheduler, env.draws);
    z0.dispose();
    const text = model.encodeText(pairPrompts(micro));
    try {
      const scores = model.score(x, [...ts, ...ts], text);
      const out = pairLoss(scores, { label0: micro.map((r) => r.label0), label1: micro.map((r) => r.label1), weights: weights.slice(s, s + micro.length) });
      backward(out.loss);
      loss += await out.loss.item();
      const v = await scores.toArray();
      micro.forEach((r, i) => { acc += pairAccuracy(v[i], v[micro.length + i], r.label0, r.label1); });
      for (const t of [scores, out.loss, out.logits, out.probs, out.perPair]) t.dispose();
    } finally {
      text.dispose();
      x.dispose();
    }
  }
  return { loss, accuracy: acc / rows.length };
}

export async function trainLrm(model: LatentRewardModel, train: PairDataset, validation: PairDataset | null, opts: TrainLrmOptions): Promise<TrainLrmResult> {
  const { batchSize, microBatch } = checkOptions(opts);
  const seed = opts.seed ?? 42;
  const scheduler = opts.scheduler ?? lrmScheduler(model);
  const maxLr = opts.lr ?? 1e-5;
  const sched = { maxLr, warmup: opts.warmupSteps ?? 500, total: opts.steps };
  warmupDecayLr(0, sched); // validates
  if (opts.trainTextEncoder === false) model.textEncoder.freeze();
  if (opts.gradientCheckpointing) model.unet.enableGradientCheckpointing(true);
  const params = model.trainableParameters();
  const opt = new AdamW(params, { lr: 0, weightDecay: opts.weightDecay ?? 0.3, betas: opts.betas, eps: opts.eps });
  const draws = new PairDraws(seed);
  const pos: StreamPosition = { epoch: 0, consumed: 0 };
  const evals: EvalRecord[] = [];
  let best: EvalRecord | null = null;
  const t0 = Date.now();
  if (opts.outDir) fs.mkdirSync(opts.outDir, { recursive: true });
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const guard = opts.guard ?? new StepGuard({ maxConsecutive: opts.maxNonFiniteSteps ?? 5, log });
  const every = opts.checkpointEvery ?? 0;
  if (!(Number.isInteger(every) && every >= 0)) throw new ArgumentError(`trainLrm: checkpointEvery must be a non-negative integer, got ${every}`);
  if ((every || opts.resume === true) && !opts.outDir) throw new ArgumentError('trainLrm: training checkpoints need outDir');
  const store = every || opts.resume === true ? new CheckpointStore(path.join(opts.outDir!, 'checkpoints'), { keep: opts.keepCheckpoints ?? 3 }) : null;
  let start = 0;
  if (opts.resume) {
    // `resume` is one checkpoint folder (it has a manifest), a store root, or true for <outDir>/checkpoints.
    const at = opts.resume === true ? store!.root : opts.resume;
    const one = fs.existsSync(path.join(at, MANIFEST_FILE));
    const from = new CheckpointStore(one ? path.dirname(at) : at);
    const c = one ? from.load(at) : from.latest((dir, e) => log(`checkpoint ${dir} is corrupted (${e.problem}); trying an older one`));
    if (c) {
      const s = await loadLrmCheckpoint(c.dir, model, opt);
      if (s.seed !== seed) throw new ArgumentError(`trainLrm: the checkpoint ${c.dir} was made with seed ${s.seed}, this run has ${seed}`);
      start = s.step;
      draws.setState(s.draws);
      Object.assign(pos, s.data);
      best = s.best as EvalRecord | null;
      log(`resumed from ${c.dir} at step ${start}`);
    }
  }
  const stream = pairStream(train, seed, { images: !!opts.vae, where: opts.where }, pos);

  const evaluate = async (step: number, timesteps = opts.evalTimesteps ?? [1]): Promise<void> => {
    if (!validation) return;
    const r = await evaluateLrm(model, validation, {
      timesteps, seed, batchPairs: opts.evalBatch, maxPairs: opts.evalMaxPairs, vae: opts.vae, scheduler,
    });
    const a1 = accuracyAt(r, 1);
    const isBest = a1 !== undefined && (best === null || a1 > (best.accuracyT1 ?? -1));
    const rec: EvalRecord = { ...r, step, accuracyT1: a1, best: isBest };
    if (isBest) {
      best = rec;
      if (opts.outDir) await model.save(path.join(opts.outDir, 'best'));
    }
    evals.push(rec);
    appendJsonl(opts.metricsFile, { type: 'eval', step, pairs: r.pairs, accuracy_t1: a1 ?? null, by_timestep: Object.fromEntries(r.byTimestep.map((e) => [e.t, e.accuracy])), best: isBest });
    opts.onEval?.(rec);
  };

  try {
    const edge = opts.edgeEvalTimesteps ?? opts.evalTimesteps;
    if (start === 0) await evaluate(0, edge);
    const evalEvery = opts.evalEvery ?? 100;
    for (let step = start; step < opts.steps; step++) {
      const tStep = Date.now();
      const rows: PairRow[] = [];
      while (rows.length < batchSize) rows.push((await stream.next()).value as PairRow);
      const { loss, accuracy } = await accumulatePairGradients(model, rows, { microBatch, timesteps: opts.timesteps ?? LRM_TIMESTEPS, draws, scheduler, vae: opts.vae });
      const maxNorm = opts.maxGradNorm ?? 1.0;
      const norm = maxNorm > 0 ? clipGradNorm(params, maxNorm) : null;
      opt.lr = warmupDecayLr(step, sched);
      // The guard reads the gradients' finiteness flag and the norm back together, then steps or skips.
      const verdict = await guard.step(opt, norm ? [norm] : [], `LRM step ${step + 1}`).finally(() => norm?.dispose());
      const gradNorm = norm ? verdict.scalars[0] : NaN;
      const m: StepMetrics = {
        step: step + 1, loss, batchAccuracy: accuracy, lr: opt.lr, gradNorm,
        pairsPerSecond: batchSize / Math.max(1e-9, (Date.now() - tStep) / 1000), elapsedSeconds: (Date.now() - t0) / 1000,
      };
      appendJsonl(opts.metricsFile, { type: 'step', step: m.step, loss, batch_accuracy: accuracy, lr: m.lr, grad_norm: gradNorm, pairs_per_s: m.pairsPerSecond, elapsed_s: m.elapsedSeconds });
      opts.onStep?.(m);
      if (evalEvery > 0 && m.step % evalEvery === 0 && m.step < opts.steps) await evaluate(m.step);
      if (store && every && (m.step % every === 0 || m.step === opts.steps)) {
        await saveLrmCheckpoint(store, model, opt, { version: 1, step: m.step, seed, draws: draws.state(), data: { ...pos }, best: best as Record<string, unknown> | null });
      }
    }
    await evaluate(opts.steps, edge);
    if (opts.outDir) await model.save(path.join(opts.outDir, 'final'));
  } finally {
    await stream.return(undefined);
    opt.dispose();
    opt.zeroGrad();
  }
  return { steps: opts.steps, evals, best, seconds: (Date.now() - t0) / 1000 };
}
