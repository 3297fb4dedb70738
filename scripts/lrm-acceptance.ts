// The LRM acceptance experiment (issue 8): on synthetic pairs whose winner is fixed by a latent property tied to
// the prompt ("bright": the higher mean of latent channel 0 wins; "dark": the lower), training a small randomly
// initialised LRM lifts held-out accuracy from ~50% to > 90% at t = 1 and keeps it above chance at t = 951.
//
//   npx vite-node --config vitest.config.ts scripts/lrm-acceptance.ts [out-dir]
//
// Env (optional): LRM_ACC_STEPS, LRM_ACC_BATCH, LRM_ACC_LR, LRM_ACC_TRAIN, LRM_ACC_VAL, LRM_ACC_SIDE, LRM_ACC_WIDTH, LRM_ACC_SHIFT, LRM_ACC_EVAL_EVERY.
// Writes <out>/metrics.jsonl, <out>/accuracy_by_timestep.svg and <out>/result.json; prints the curve and the time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initGpu } from '../src/gpu/runtime.js';
import { Generator } from '../src/tensor/random.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../src/nn/clip.js';
import { UNet2DConditionModel } from '../src/nn/unet.js';
import { CLIPTokenizer } from '../src/io/tokenizer.js';
import { LatentRewardModel } from '../src/lrm/model.js';
import { LRM_TIMESTEPS } from '../src/lrm/schedule.js';
import { brightDarkDataset } from '../src/lrm/synthetic.js';
import { trainLrm } from '../src/lrm/train.js';
import { linePlotSvg } from '../src/report/plot.js';

const num = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);
const out = process.argv[2] ?? 'lrm-acceptance-out';
const steps = num('LRM_ACC_STEPS', 150);
const batch = num('LRM_ACC_BATCH', 32);
const lr = num('LRM_ACC_LR', 1e-3);
const side = num('LRM_ACC_SIDE', 8);
const width = num('LRM_ACC_WIDTH', 16);

const g = await initGpu();
console.log(`adapter: ${g.summary.description}${g.summary.isSoftware ? ' (software)' : ''}`);
const unetConfig = {
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  block_out_channels: [width, 2 * width], layers_per_block: 1, norm_num_groups: 4, cross_attention_dim: 32, attention_head_dim: 2, sample_size: side,
};
const clip = parseCLIPTextConfig({ hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, max_position_embeddings: 77, vocab_size: 49408 });
const model = new LatentRewardModel({
  unet: new UNet2DConditionModel(unetConfig, { gen: new Generator(1), upBlocks: false }),
  textEncoder: new CLIPTextModel(clip, { gen: new Generator(2) }),
  tokenizer: CLIPTokenizer.fromFile(),
  seed: 3,
});
console.log(`LRM: ${model.numParameters().toLocaleString()} parameters, latents 4×${side}×${side}, features ${model.config.featureIndices.join(',')} + mid, w = ${model.config.vfeWeight}`);
const shift = num('LRM_ACC_SHIFT', 1);
const train = brightDarkDataset(num('LRM_ACC_TRAIN', 2048), 100, { side, shift, tieEvery: 16 });
const val = brightDarkDataset(num('LRM_ACC_VAL', 200), 200, { side, shift });
// The curve before and after training: every other timestep of the 20-step grid, and both ends.
const curve = LRM_TIMESTEPS.filter((t, i) => i % 2 === 0 || t === 951);
fs.mkdirSync(out, { recursive: true });
const metricsFile = path.join(out, 'metrics.jsonl');
fs.writeFileSync(metricsFile, '');
const t0 = Date.now();
const res = await trainLrm(model, train, val, {
  steps, batchSize: batch, microBatch: batch, lr, warmupSteps: Math.round(steps / 10), seed: 42,
  evalEvery: num('LRM_ACC_EVAL_EVERY', 25), evalTimesteps: [1, 951], edgeEvalTimesteps: curve, evalBatch: 50, metricsFile,
  onStep: (m) => { if (m.step % 10 === 0) console.log(`step ${m.step}: loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} |g| ${m.gradNorm.toFixed(3)} ${m.pairsPerSecond.toFixed(1)} pairs/s`); },
  onEval: (e) => console.log(`eval @${e.step}: ${e.byTimestep.map((x) => `t=${x.t} ${(100 * x.accuracy).toFixed(1)}%`).join(', ')}`),
});
const seconds = (Date.now() - t0) / 1000;
const first = res.evals[0];
const last = res.evals[res.evals.length - 1];
console.log(`\ntrained ${steps} steps × ${batch} pairs in ${seconds.toFixed(0)} s (${(seconds / steps).toFixed(2)} s/step, evaluations included)\n`);
console.log('timestep  before   after');
first.byTimestep.forEach((e, i) => console.log(`${String(e.t).padStart(8)}  ${(100 * e.accuracy).toFixed(1).padStart(5)}%  ${(100 * last.byTimestep[i].accuracy).toFixed(1).padStart(5)}%`));
fs.writeFileSync(path.join(out, 'accuracy_by_timestep.svg'), linePlotSvg([
  { label: 'before training', points: first.byTimestep.map((e) => [e.t, e.accuracy]) },
  { label: `after ${steps} steps`, points: last.byTimestep.map((e) => [e.t, e.accuracy]) },
], { title: 'LRM held-out accuracy by timestep (synthetic bright/dark pairs)', xLabel: 'timestep t', yLabel: 'accuracy', yRange: [0, 1], yRef: 0.5 }));
fs.writeFileSync(path.join(out, 'result.json'), `${JSON.stringify({ adapter: g.summary.description, steps, batch, lr, side, width, shift, seconds, before: first.byTimestep, after: last.byTimestep }, null, 2)}\n`);
model.dispose();
