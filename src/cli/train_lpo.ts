// `lpo train-lpo`: tunes a LoRA on a diffusers SD model with latent step-level preference optimisation (LPO) or
// step-wise GRPO, scored by a latent reward model. Writes <out>/lora.safetensors (diffusers format),
// <out>/checkpoints/step-N (LoRA, optimizer, position; --resume continues from the newest exactly) and <out>/metrics.jsonl.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { initGpu } from '../gpu/runtime.js';
import { saveLoRA } from '../io/lora.js';
import { DEFAULT_LORA_TARGETS } from '../nn/lora.js';
import { readPrompts } from '../lpo/prompts.js';
import { LpoTrainer, LPO_SD15_CONFIG, type LpoTrainConfig } from '../lpo/trainer.js';
import { validateThresholdConfig, type ThresholdConfig, type ThresholdStrategy } from '../lpo/threshold.js';
import { defineCommand, parseCommand, type Args } from './args.js';
import { loadLpoBase, loadLrmFor } from './lpo_models.js';
import { Progress } from './progress.js';

const D = LPO_SD15_CONFIG;

export const trainLpoSpec = defineCommand({
  name: 'train-lpo',
  summary: 'tunes a LoRA with latent step-level preference optimisation (LPO) or step-wise GRPO',
  details: 'Writes <out>/lora.safetensors (diffusers load_lora_weights format), <out>/checkpoints/ and <out>/metrics.jsonl. '
    + 'Defaults are the authors\' SD1.5 settings (LPO-SPEC §5.4) on one process.',
  options: {
    model: { type: 'string', required: true, path: 'dir', value: 'diffusers folder', help: 'base model (unet/, text_encoder/, tokenizer/, scheduler/; vae/ only for the LRM check)' },
    lrm: { type: 'string', required: true, path: 'dir', value: 'lrm folder', help: 'latent reward model (lpo train-lrm output)' },
    lrmVae: { type: 'string', path: 'dir', value: 'vae folder', help: "the LRM's VAE, when its base model folder is not at hand (heterogeneous LRM check)" },
    prompts: { type: 'string', required: true, path: 'file', value: 'file', help: 'prompt file: JSON ([{caption}] or [string]) or text, one per line' },
    algo: { type: 'string', choices: ['lpo', 'grpo'], default: 'lpo', help: 'LPO pairs or step-wise GRPO groups' },
    out: { type: 'string', short: 'o', default: 'lpo-out', value: 'folder', help: 'output folder' },
    resume: { type: 'boolean', help: 'continue from the newest checkpoint in <out>/checkpoints (same settings and prompt file)' },
    epochs: { type: 'int', min: 1, default: D.epochs, help: 'passes over the prompt file' },
    maxIterations: { type: 'int', min: 1, help: 'stop after this many iterations (this run)' },
    sampleBatch: { type: 'int', min: 1, default: D.sampleBatchSize, help: 'prompts sampled per iteration' },
    trainBatch: { type: 'int', min: 1, default: D.trainBatchSize, help: 'pairs (or groups) per optimizer step' },
    microBatch: { type: 'int', min: 1, atMost: 'trainBatch', help: 'pairs per forward pass inside a step (memory; default: --train-batch)' },
    k: { type: 'int', min: 2, default: D.K, help: 'candidates per step (K)' },
    steps: { type: 'int', min: 1, default: D.numInferenceSteps, help: 'DDIM steps' },
    guidance: { type: 'number', min: 0, default: D.guidanceScale, help: 'CFG scale in sampling and training' },
    eta: { type: 'number', min: 1e-6, default: D.eta, help: 'DDIM η (> 0)' },
    beta: { type: 'number', min: 0, default: D.beta, help: 'β of the LPO loss' },
    clipEps: { type: 'number', min: 0, max: 1, default: D.clipEps, help: 'ratio clamp ε: r ∈ [1 − ε, 1 + ε]' },
    grpoClip: { type: 'number', min: 0, max: 1, default: D.grpoClip, help: 'GRPO PPO clip ε' },
    klBeta: { type: 'number', min: 0, default: D.klBeta, help: 'GRPO KL coefficient' },
    lr: { type: 'number', min: 0, default: D.lr, help: 'AdamW learning rate (constant)' },
    weightDecay: { type: 'number', min: 0, default: D.weightDecay, help: 'AdamW weight decay' },
    maxGradNorm: { type: 'number', min: 0, help: "gradient clipping (default off: the authors' clip is a no-op)" },
    rank: { type: 'int', min: 1, default: D.loraRank, help: 'LoRA rank' },
    alpha: { type: 'number', min: 0, help: 'LoRA alpha (default: the rank, scale 1)' },
    targets: { type: 'list', default: [...DEFAULT_LORA_TARGETS], value: 'name,…', help: 'LoRA target modules' },
    threshold: { type: 'string', choices: ['sigma', 'variance', 'linear', 'constant'], default: 'sigma', help: 'pair threshold strategy' },
    thresholdRange: { type: 'list', default: ['0.35', '0.5'], value: 'min,max', help: 'dynamic threshold range (SD1.5: 0.35,0.5; SDXL: 0.45,0.6)' },
    thresholdValue: { type: 'number', min: 0, max: 1, help: "the threshold of --threshold constant" },
    timestepRange: { type: 'list', value: 'lo,hi', help: 'train only on steps with t in [lo, hi]' },
    checkpointEvery: { type: 'int', min: 1, default: 50, help: 'checkpoint every n iterations (and at the end)' },
    maxNonFinite: { type: 'int', min: 1, default: 5, help: 'optimizer steps in a row with NaN/Inf gradients (each skipped) that stop training' },
    checkpointing: { type: 'boolean', help: 'gradient checkpointing in the U-Net (less memory)' },
    seed: { type: 'int', min: 0, default: D.seed, help: 'seed of the LoRA init, prompt order and sampling' },
  },
  // The threshold and the timestep range are checked before anything loads (the trainer would only after).
  checks: [
    (a) => { validateThresholdConfig(thresholdOf(a as Args<typeof trainLpoSpec>)); return null; },
    (a) => {
      const r = pairOf('--timestep-range', a.timestepRange as string[] | undefined);
      return r && !(r[0] >= 0 && r[0] <= r[1] && r[1] <= 999) ? `--timestep-range needs 0 ≤ lo ≤ hi ≤ 999, got '${r.join(',')}'` : null;
    },
  ],
});

function pairOf(flag: string, xs: string[] | undefined): [number, number] | undefined {
  if (!xs) return undefined;
  const v = xs.map(Number);
  if (v.length !== 2 || !v.every(Number.isFinite)) throw new UsageError(`${flag} needs two numbers 'a,b', got '${xs.join(',')}'`);
  return [v[0], v[1]];
}

function thresholdOf(a: Args<typeof trainLpoSpec>): ThresholdConfig {
  const strategy = a.threshold as ThresholdStrategy;
  if (strategy === 'constant' && a.thresholdValue === undefined) throw new UsageError('--threshold constant needs --threshold-value');
  return strategy === 'constant' ? { strategy, value: a.thresholdValue } : { strategy, range: pairOf('--threshold-range', a.thresholdRange) };
}

export async function trainLpoCommand(argv: string[]): Promise<number> {
  const a = parseCommand(trainLpoSpec, argv);
  if (!a) return 0;
  const threshold = thresholdOf(a);
  const config: Partial<LpoTrainConfig> = {
    algo: a.algo as 'lpo' | 'grpo', seed: a.seed, epochs: a.epochs, sampleBatchSize: a.sampleBatch, trainBatchSize: a.trainBatch,
    microBatch: a.microBatch, K: a.k, numInferenceSteps: a.steps, guidanceScale: a.guidance, eta: a.eta, beta: a.beta, clipEps: a.clipEps,
    grpoClip: a.grpoClip, klBeta: a.klBeta, lr: a.lr, weightDecay: a.weightDecay, maxGradNorm: a.maxGradNorm, loraRank: a.rank,
    loraAlpha: a.alpha, loraTargets: a.targets, threshold, timestepRange: pairOf('--timestep-range', a.timestepRange),
    outDir: a.out, checkpointEvery: a.checkpointEvery, maxNonFiniteSteps: a.maxNonFinite, metricsFile: join(a.out, 'metrics.jsonl'), gradientCheckpointing: a.checkpointing,
  };
  const prompts = readPrompts(a.prompts);
  await initGpu();
  const err = process.stderr;
  const t0 = Date.now();
  const base = await loadLpoBase(a.model);
  const { lrm, note } = await loadLrmFor(a.model, a.lrm, a.lrmVae).catch((e) => { base.dispose(); throw e; });
  err.write(`loaded ${a.model} and ${a.lrm} in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${note}\n`);
  mkdirSync(a.out, { recursive: true });
  if (!a.resume) rmSync(join(a.out, 'metrics.jsonl'), { force: true });
  const trainer = new LpoTrainer({ unet: base.unet, encodePrompt: base.encodePrompt, scheduler: base.scheduler, reward: lrm }, prompts, config);
  try {
    if (a.resume) {
      const from = await trainer.resume(trainer.checkpointRoot, (m) => err.write(`${m}\n`));
      err.write(`resumed from ${from} at iteration ${trainer.iteration} of ${trainer.totalIterations}\n`);
    }
    err.write(`${a.algo.toUpperCase()}: ${prompts.length} prompts, ${trainer.totalIterations} iterations of ${a.sampleBatch} prompts, K = ${a.k}, LoRA rank ${a.rank} `
      + `(${trainer.optimizer.params.reduce((s, p) => s + p.size, 0)} parameters)\n`);
    const stop = a.maxIterations === undefined ? trainer.totalIterations : Math.min(trainer.totalIterations, trainer.iteration + a.maxIterations);
    const bar = new Progress({ total: stop, label: a.algo, stream: err });
    bar.update(trainer.iteration);
    await trainer.train({
      maxIterations: stop - trainer.iteration,
      onIteration: (m) => bar.update(m.iteration + 1, {
        [a.algo === 'lpo' ? 'pairs/s' : 'groups/s']: m.itemsPerSecond, valid: m.validRate, loss: m.loss ?? '-', reward: m.finalScore,
      }),
    });
    bar.done();
    if (!(trainer.config.checkpointEvery && trainer.iteration % trainer.config.checkpointEvery === 0) && !trainer.done) await trainer.saveCheckpoint();
    await saveLoRA(base.unet, join(a.out, 'lora.safetensors'));
    err.write(`${trainer.iteration} iterations, ${trainer.optimizerSteps} optimizer steps; wrote ${join(a.out, 'lora.safetensors')}\n`);
  } finally {
    trainer.dispose();
    lrm.dispose();
    base.dispose();
  }
  return 0;
}
