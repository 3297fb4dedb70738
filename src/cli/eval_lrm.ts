// `lpo eval-lrm`: held-out accuracy of a saved LRM on preference pairs, overall (t = 1) and per timestep.
import { initGpu } from '../gpu/runtime.js';
import { evaluateLrm, accuracyAt } from '../lrm/eval.js';
import { LatentRewardModel } from '../lrm/model.js';
import { countMpcf, formatMpcfCounts, mpcfFilter, parseMpcfStrategy } from '../lrm/mpcf.js';
import { LRM_TIMESTEPS } from '../lrm/schedule.js';
import { defineCommand, parseCommand } from './args.js';
import { accuracyTable, gapsCsvProblem, loadVae, openLrmPairs, parseTimesteps } from './lrm_data.js';
import { Progress } from './progress.js';

export const evalLrmSpec = defineCommand({
  name: 'eval-lrm',
  summary: 'accuracy of a latent reward model on preference pairs, overall (t = 1) and per timestep',
  options: {
    lrm: { type: 'string', required: true, path: 'dir', value: 'lrm folder', help: 'a saved LRM (lpo train-lrm output: best/ or final/)' },
    data: { type: 'string', required: true, path: 'exists', value: 'pairs', help: 'pairs: a pair folder (pairs.jsonl) or Pick-a-Pic parquet' },
    split: { type: 'string', choices: ['train', 'validation', 'test'], default: 'validation', help: 'split of a pair folder' },
    model: { type: 'string', path: 'dir', value: 'diffusers folder', help: "base model whose VAE encodes image rows (default: the LRM's base_model)" },
    timesteps: { type: 'list', default: ['all'], value: 't,t,…|all', help: 'timesteps to evaluate at (all: 1, 51, …, 951)' },
    mpcf: { type: 'string', choices: ['none', '1', '2', '3'], default: 'none', help: 'MPCF filter of the pairs' },
    gapsCsv: { type: 'string', path: 'file', value: 'file.csv', help: 'side CSV of score gaps for parquet --data' },
    maxPairs: { type: 'int', min: 1, help: 'at most this many pairs' },
    batch: { type: 'int', min: 1, default: 8, help: 'pairs per forward pass' },
    unetBatch: { type: 'int', min: 1, help: 'run the U-Net on at most n items at a time (less memory; same result)' },
    seed: { type: 'int', min: 0, default: 42, help: 'seed of the evaluation noise' },
    skipBad: { type: 'boolean', help: 'skip malformed rows (counted) instead of stopping' },
  },
  checks: [(a) => gapsCsvProblem(a.data as string, a.gapsCsv as string | undefined)],
});

export async function evalLrmCommand(argv: string[]): Promise<number> {
  const a = parseCommand(evalLrmSpec, argv);
  if (!a) return 0;
  const timesteps = parseTimesteps(a.timesteps, LRM_TIMESTEPS, '--timesteps')!;
  await initGpu();
  const err = process.stderr;
  const model = await LatentRewardModel.fromPretrained(a.lrm);
  const vae = await loadVae(a.model ?? model.baseModel);
  if (a.unetBatch) model.unetBatch = a.unetBatch;
  try {
    const strategy = parseMpcfStrategy(a.mpcf);
    const raw = await openLrmPairs(a.data, model, vae, { split: a.split as 'validation', skipBad: a.skipBad, gapsCsv: a.gapsCsv });
    if (strategy !== 'none') err.write(`${formatMpcfCounts(await countMpcf(raw, strategy))}\n`);
    const data = strategy === 'none' ? raw : mpcfFilter(raw, strategy);
    const bar = a.maxPairs ? new Progress({ total: a.maxPairs, label: 'eval', stream: err }) : null;
    const r = await evaluateLrm(model, data, {
      timesteps, seed: a.seed, batchPairs: a.batch, maxPairs: a.maxPairs, vae: vae ?? undefined,
      onProgress: (n) => (bar ? bar.update(n) : err.write(`\r${n} pairs`)),
    });
    if (bar) bar.done();
    else err.write('\n');
    const a1 = accuracyAt(r, 1);
    process.stdout.write(`${r.pairs} pairs; accuracy at t = 1: ${a1 === undefined ? '-' : `${(100 * a1).toFixed(1)}%`}\n${accuracyTable(r)}\n`);
  } finally {
    vae?.dispose();
    model.dispose();
  }
  return 0;
}
