// `lpo train-lrm`: trains a Latent Reward Model from a diffusers base model on preference pairs (LPO-SPEC §2),
// with a progress bar, periodic validation lines, metrics.jsonl and accuracy_by_timestep.svg in the output folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initGpu } from '../gpu/runtime.js';
import { LatentRewardModel } from '../lrm/model.js';
import { countMpcf, formatMpcfCounts, mpcfFilter, parseMpcfStrategy } from '../lrm/mpcf.js';
import { LRM_TIMESTEPS } from '../lrm/schedule.js';
import { trainLrm, type EvalRecord } from '../lrm/train.js';
import { defineCommand, parseCommand } from './args.js';
import { fitLrmHeads } from '../lrm/heads.js';
import { accuracyTable, gapsCsvProblem, loadVae, openLrmPairs, parseTimesteps } from './lrm_data.js';
import { linePlotSvg } from '../report/plot.js';
import { Progress } from './progress.js';

export const trainLrmSpec = defineCommand({
  name: 'train-lrm',
  summary: 'trains a latent reward model (LRM) on preference pairs',
  details: 'Writes <out>/best (best validation accuracy at t = 1), <out>/final, <out>/metrics.jsonl and <out>/accuracy_by_timestep.svg.',
  options: {
    model: { type: 'string', required: true, path: 'dir', value: 'diffusers folder', help: 'base model (unet/, text_encoder/, tokenizer/, scheduler/, vae/)' },
    init: { type: 'string', path: 'dir', value: 'lrm folder', help: 'start from a saved LRM instead of the base model' },
    data: { type: 'string', required: true, path: 'exists', value: 'pairs', help: 'training pairs: a pair folder (pairs.jsonl) or Pick-a-Pic parquet' },
    valData: { type: 'string', path: 'exists', value: 'pairs', help: "validation pairs (default: the 'validation' split of a --data folder)" },
    gapsCsv: { type: 'string', path: 'file', value: 'file.csv', help: 'side CSV of score gaps for parquet --data (for --mpcf)' },
    mpcf: { type: 'string', choices: ['none', '1', '2', '3'], default: 'none', help: 'MPCF filter strategy of the training pairs (LPO-SPEC §3; the paper uses 2)' },
    steps: { type: 'int', min: 1, default: 4000, help: 'optimizer steps' },
    batch: { type: 'int', min: 1, default: 128, help: 'pairs per optimizer step (global batch)' },
    microBatch: { type: 'int', min: 1, atMost: 'batch', help: 'pairs per forward/backward pass; gradients accumulate (default: --batch)' },
    lr: { type: 'number', min: 0, default: 1e-5, help: 'peak learning rate' },
    warmup: { type: 'int', min: 0, default: 500, help: 'log warm-up steps (then linear decay to 0)' },
    headSteps: { type: 'int', min: 0, default: 0, help: 'first fit the projection heads and tau on frozen features of the noisy training pairs for n full-batch steps (a linear-probe warm start; not on --resume)' },
    headDraws: { type: 'int', min: 1, default: 4, help: 'noisy copies of each training pair for --head-steps' },
    weightDecay: { type: 'number', min: 0, default: 0.3, help: 'AdamW weight decay (every parameter, tau included)' },
    maxGradNorm: { type: 'number', min: 0, default: 1, help: 'gradient clipping norm (0: off)' },
    vfe: { type: 'number', default: 7.5, help: 'VFE weight w (1: no null pass)' },
    clipProjection: { type: 'string', path: 'file', value: 'file.safetensors', help: "CLIP checkpoint whose text_projection.weight starts the text projection (default N(0, 0.02²))" },
    evalEvery: { type: 'int', min: 0, default: 100, help: 'validate every n steps (and before and after training)' },
    evalTimesteps: { type: 'list', default: ['1'], value: 't,t,…|all', help: 'timesteps of the periodic validations' },
    plotTimesteps: { type: 'list', default: ['all'], value: 't,t,…|all', help: 'timesteps of the first and last validation (the plot)' },
    evalMaxPairs: { type: 'int', min: 1, help: 'at most this many validation pairs per validation' },
    evalBatch: { type: 'int', min: 1, default: 8, help: 'validation pairs per forward pass' },
    freezeTextEncoder: { type: 'boolean', help: 'keep the text encoder fixed' },
    checkpointing: { type: 'boolean', help: 'gradient checkpointing in the U-Net (less memory, ~1.3x time)' },
    unetBatch: { type: 'int', min: 1, help: 'run the U-Net on at most n items at a time (less memory; same result)' },
    skipBad: { type: 'boolean', help: 'skip malformed rows (counted) instead of stopping' },
    seed: { type: 'int', min: 0, default: 42, help: 'seed of the data order, timesteps and noise' },
    out: { type: 'string', short: 'o', default: 'lrm-out', value: 'folder', help: 'output folder' },
    checkpointEvery: { type: 'int', min: 0, default: 500, help: 'training checkpoint (weights, optimizer, data position) every n steps into <out>/checkpoints; 0: none' },
    keepCheckpoints: { type: 'int', min: 1, default: 2, help: 'training checkpoints kept (the newest)' },
    resume: { type: 'boolean', help: 'continue from the newest checkpoint in <out>/checkpoints that verifies (same data, seed and steps)' },
    maxNonFinite: { type: 'int', min: 1, default: 5, help: 'steps in a row with NaN/Inf gradients (each skipped) that stop training' },
  },
  checks: [(a) => gapsCsvProblem(a.data as string, a.gapsCsv as string | undefined)],
});

export async function trainLrmCommand(argv: string[]): Promise<number> {
  const a = parseCommand(trainLrmSpec, argv);
  if (!a) return 0;
  const evalTs = parseTimesteps(a.evalTimesteps, LRM_TIMESTEPS, '--eval-timesteps')!;
  const plotTs = parseTimesteps(a.plotTimesteps, LRM_TIMESTEPS, '--plot-timesteps')!;
  await initGpu();
  const err = process.stderr;
  const t0 = Date.now();
  const model = a.init
    ? await LatentRewardModel.fromPretrained(a.init)
    : await LatentRewardModel.fromDiffusers(a.model, { config: { vfeWeight: a.vfe }, clipTextProjection: a.clipProjection, seed: a.seed });
  const vae = await loadVae(a.model);
  if (a.unetBatch) model.unetBatch = a.unetBatch;
  err.write(`LRM: ${(model.numParameters() / 1e6).toFixed(2)}M parameters (truncated U-Net ${(model.unet.numParameters() / 1e6).toFixed(2)}M), `
    + `features ${model.config.featureIndices.join(',')} + mid, w = ${model.config.vfeWeight}, loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  let skipped = 0;
  const onSkip = () => { skipped++; };
  const strategy = parseMpcfStrategy(a.mpcf);
  const rawTrain = await openLrmPairs(a.data, model, vae, { split: 'train', skipBad: a.skipBad, gapsCsv: a.gapsCsv, onSkip });
  const train = strategy === 'none' ? rawTrain : mpcfFilter(rawTrain, strategy);
  if (strategy !== 'none') err.write(`${formatMpcfCounts(await countMpcf(rawTrain, strategy))}\n`);
  let validation = a.valData
    ? await openLrmPairs(a.valData, model, vae, { split: 'validation', skipBad: a.skipBad, onSkip })
    : fs.existsSync(path.join(a.data, 'pairs.jsonl')) ? await openLrmPairs(a.data, model, vae, { split: 'validation', skipBad: a.skipBad, onSkip }) : null;
  if (validation) {
    // A folder without validation rows gives an empty split: train without validation then.
    const it = validation.rows({ images: false, latents: false })[Symbol.asyncIterator]();
    const first = await it.next();
    await it.return?.();
    if (first.done) {
      err.write(`no validation pairs in ${validation.source}: training without validation (no best checkpoint)\n`);
      validation = null;
    }
  }
  fs.mkdirSync(a.out, { recursive: true });
  const metricsFile = path.join(a.out, 'metrics.jsonl');
  if (!a.resume) fs.writeFileSync(metricsFile, '');
  const bar = new Progress({ total: a.steps, label: 'train', stream: err });
  const evalLine = (e: EvalRecord) => {
    const byT = e.byTimestep.length > 1 ? `  by t: ${e.byTimestep.map((x) => `${x.t}:${(100 * x.accuracy).toFixed(0)}`).join(' ')}` : '';
    bar.log(`eval step ${e.step}: ${e.pairs} pairs, accuracy t=1 ${e.accuracyT1 === undefined ? '-' : `${(100 * e.accuracyT1).toFixed(1)}%`}${e.best ? ' (best, saved)' : ''}${byT}`);
  };
  if (a.headSteps > 0 && !a.resume) {
    const hb = new Progress({ total: a.headSteps, label: 'heads', stream: err });
    const h = await fitLrmHeads(model, train, { steps: a.headSteps, draws: a.headDraws, seed: a.seed, vae: vae ?? undefined, onStep: (m) => hb.update(m.step, { loss: m.loss, acc: m.accuracy }) });
    hb.done();
    err.write(`heads: fitted on ${h.samples} noisy pairs (${h.pairs} × ${a.headDraws}) in ${h.seconds.toFixed(1)} s; training accuracy ${(100 * h.accuracy).toFixed(1)}%\n`);
  }
  const res = await trainLrm(model, train, validation, {
    steps: a.steps, batchSize: a.batch, microBatch: a.microBatch, lr: a.lr, warmupSteps: a.warmup, weightDecay: a.weightDecay,
    maxGradNorm: a.maxGradNorm, seed: a.seed, trainTextEncoder: !a.freezeTextEncoder, gradientCheckpointing: a.checkpointing,
    evalEvery: a.evalEvery, evalTimesteps: evalTs, edgeEvalTimesteps: plotTs, evalBatch: a.evalBatch, evalMaxPairs: a.evalMaxPairs,
    outDir: a.out, metricsFile, vae: vae ?? undefined,
    checkpointEvery: a.checkpointEvery, keepCheckpoints: a.keepCheckpoints, resume: a.resume, maxNonFiniteSteps: a.maxNonFinite, log: (m) => bar.log(m),
    onStep: (m) => bar.update(m.step, { loss: m.loss, lr: m.lr, 'pairs/s': m.pairsPerSecond }),
    onEval: evalLine,
  });
  bar.done();
  if (skipped) err.write(`skipped ${skipped} malformed rows (--skip-bad)\n`);
  const first = res.evals[0];
  const last = res.evals[res.evals.length - 1];
  if (first && last && last.byTimestep.length > 1) {
    const svg = linePlotSvg([
      { label: `before training (step ${first.step})`, points: first.byTimestep.map((e) => [e.t, e.accuracy]) },
      { label: `after training (step ${last.step})`, points: last.byTimestep.map((e) => [e.t, e.accuracy]) },
    ], { title: 'LRM validation accuracy by timestep', xLabel: 'timestep t', yLabel: 'accuracy', yRange: [0, 1], yRef: 0.5 });
    fs.writeFileSync(path.join(a.out, 'accuracy_by_timestep.svg'), svg);
  }
  if (last) process.stdout.write(`${accuracyTable(last)}\n`);
  err.write(`trained ${res.steps} steps in ${res.seconds.toFixed(1)} s; best t=1 accuracy ${res.best?.accuracyT1 !== undefined ? `${(100 * res.best.accuracyT1).toFixed(1)}% at step ${res.best.step}` : '-'}; wrote ${a.out}\n`);
  vae?.dispose();
  model.dispose();
  return 0;
}
