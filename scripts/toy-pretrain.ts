// `npm run toy:pretrain [-- --out DIR --seed N --quick]`: pre-trains the toy base model from scratch (VAE, then
// text encoder + U-Net) with the project's own autograd and AdamW, writes the diffusers folder (default
// assets/toy/base), measures it on the held-out prompts with the hidden judge, and writes the folder's README
// (configs, parameter counts, seed, wall time, metrics). Progress goes to stdout, one line per report.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initGpu } from '../src/gpu/runtime.js';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.js';
import { DEFAULT_PRETRAIN, pretrainToyBase, type PretrainConfig } from '../src/toy/pretrain.js';
import { folderBytes } from '../src/toy/checkpoint.js';
import { evaluatePipeline, formatEvalSummary } from '../src/toy/evaluate.js';
import { HELD_OUT_PROMPTS } from '../src/toy/captions.js';
import { toyReadme } from '../src/toy/readme.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'assets/toy/base' },
    seed: { type: 'string' },
    quick: { type: 'boolean', default: false },
    work: { type: 'string' },
    unet: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log([
    'usage: npm run toy:pretrain -- [--out DIR] [--seed N] [--work DIR] [--unet JSON] [--quick]',
    '  --work DIR: keep the trained VAE there (a rerun with the same seed reuses it) and EMA snapshots of the diffusion stage',
    '  --unet JSON: U-Net config.json fields that differ from the default (architecture experiments), e.g.',
    '      \'{"down_block_types":["CrossAttnDownBlock2D","CrossAttnDownBlock2D"],"up_block_types":["CrossAttnUpBlock2D","CrossAttnUpBlock2D"]}\'',
    '  --quick: a few steps of each stage (checks the mechanics; the model is useless)',
  ].join('\n'));
  process.exit(0);
}

const cfg: PretrainConfig = values.quick
  ? { ...DEFAULT_PRETRAIN, vae: { ...DEFAULT_PRETRAIN.vae, steps: 4 }, datasetSize: 256, scalingSamples: 64, diffusion: { ...DEFAULT_PRETRAIN.diffusion, steps: 4 } }
  : { ...DEFAULT_PRETRAIN };
if (values.seed !== undefined) cfg.seed = Number(values.seed);
if (values.unet !== undefined) {
  let parsed: unknown;
  try {
    parsed = JSON.parse(values.unet);
  } catch (e) {
    console.error(`--unet must be a JSON object of U-Net config fields: ${(e as Error).message}`);
    process.exit(2);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    console.error(`--unet must be a JSON object of U-Net config fields, got ${values.unet}`);
    process.exit(2);
  }
  cfg.unet = parsed as PretrainConfig['unet'];
}
const out = path.resolve(values.out!);
const t0 = Date.now();
const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s]`;
const log = (line: string) => console.log(`${stamp()} ${line}`);

const g = await initGpu();
log(`adapter: ${g.summary.description}${g.summary.isSoftware ? ' (software)' : ''}; ${os.cpus().length} CPU cores; seed ${cfg.seed}`);
const res = await pretrainToyBase(out, cfg, { log, workDir: values.work, snapshotEvery: 250 });
res.models.vae.dispose();
res.models.textEncoder.dispose();
res.models.unet.dispose();

log('evaluating the saved folder on the held-out prompts');
const pipe = await StableDiffusionPipeline.fromPretrained(out);
const seeds = [0, 1, 2, 3, 4, 5];
const evals = [];
for (const guidanceScale of [5, 7.5]) {
  const { summary } = await evaluatePipeline(pipe, HELD_OUT_PROMPTS.slice(0, 16), seeds, { steps: 20, guidanceScale });
  log(`guidance ${guidanceScale}:\n${formatEvalSummary(summary)}`);
  evals.push({ guidanceScale, summary });
}
pipe.dispose();
const bytes = folderBytes(out);
fs.writeFileSync(path.join(out, 'README.md'), toyReadme({ cfg, result: res, evals, bytes, machine: `${os.cpus().length} CPU cores, ${g.summary.description}` }));
log(`wrote ${out} (${(bytes / 1e6).toFixed(2)} MB), total ${((Date.now() - t0) / 60000).toFixed(1)} min`);
