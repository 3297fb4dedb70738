// `lpo sample`: renders a PNG grid of a model's images, one row per prompt and one column per seed; with --lora,
// the base model (adapters bypassed) on the left and the tuned model on the right, from the same initial latents.
import { initGpu } from '../gpu/runtime.js';
import { writePng } from '../io/image.js';
import { StableDiffusionPipeline } from '../diffusion/pipeline.js';
import { injectLoRAFromFile } from '../io/lora.js';
import { setLoRABypass } from '../nn/lora.js';
import type { UNet2DConditionModel } from '../nn/unet.js';
import { readPrompts } from '../lpo/prompts.js';
import { Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { concat } from '../tensor/ops/layout.js';
import { UsageError } from '../errors.js';
import { defineCommand, parseCommand } from './args.js';
import { Progress } from './progress.js';

export const sampleSpec = defineCommand({
  name: 'sample',
  summary: 'PNG grid of a model\'s images per prompt and seed; with --lora, base and tuned side by side',
  options: {
    model: { type: 'string', required: true, path: 'dir', value: 'diffusers folder', help: 'the base model' },
    lora: { type: 'string', path: 'file', ext: ['.safetensors'], value: 'file', help: 'a LoRA file (lpo train-lpo output, diffusers format)' },
    prompts: { type: 'string', required: true, path: 'file', value: 'file', help: 'prompt file (JSON or one per line)' },
    maxPrompts: { type: 'int', min: 1, default: 4, help: 'use the first n prompts' },
    seeds: { type: 'list', default: ['0', '1', '2', '3'], value: 's,s,…', help: 'one column per seed' },
    steps: { type: 'int', min: 1, default: 20, help: 'DDIM steps' },
    guidance: { type: 'number', min: 0, default: 5, help: 'CFG scale' },
    eta: { type: 'number', min: 0, default: 0, help: 'DDIM η' },
    out: { type: 'string', short: 'o', default: 'samples.png', ext: ['.png'], path: 'parent', value: 'file.png', help: 'output grid' },
  },
  checks: [(a) => {
    const bad = (a.seeds as string[]).find((s) => !/^\d+$/.test(s) || !Number.isSafeInteger(Number(s)));
    return bad === undefined ? null : `--seeds: '${bad}' is not a non-negative integer`;
  }],
});

const GAP = 4;

/** Tiles [rows × cols] CHW images (each [3, h, w] in [0, 1]) with GAP-pixel white gutters, and an extra gutter before column `split`. */
export function tileImages(images: Float32Array[][], h: number, w: number, split = -1): { data: Float32Array; shape: [number, number, number] } {
  const rows = images.length;
  const cols = images[0].length;
  const W = cols * w + (cols - 1) * GAP + (split > 0 ? 2 * GAP : 0);
  const H = rows * h + (rows - 1) * GAP;
  const data = new Float32Array(3 * H * W).fill(1);
  images.forEach((row, r) => row.forEach((img, c) => {
    const x0 = c * (w + GAP) + (split > 0 && c >= split ? 2 * GAP : 0);
    const y0 = r * (h + GAP);
    for (let ch = 0; ch < 3; ch++) for (let y = 0; y < h; y++) {
      data.set(img.subarray(ch * h * w + y * w, ch * h * w + (y + 1) * w), ch * H * W + (y0 + y) * W + x0);
    }
  }));
  return { data, shape: [3, H, W] };
}

export async function sampleCommand(argv: string[]): Promise<number> {
  const a = parseCommand(sampleSpec, argv);
  if (!a) return 0;
  const seeds = a.seeds.map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--seeds needs non-negative integers, got '${s}'`);
    return n;
  });
  const prompts = readPrompts(a.prompts).slice(0, a.maxPrompts);
  await initGpu();
  const err = process.stderr;
  const pipe = await StableDiffusionPipeline.fromPretrained(a.model);
  const unet = pipe.unet as UNet2DConditionModel;
  if (a.lora) err.write(`LoRA: ${(await injectLoRAFromFile(unet, a.lora)).length} adapted layers from ${a.lora}\n`);
  const C = unet.config.inChannels;
  const s = pipe.sampleSize;
  const variants = a.lora ? [true, false] : [true];
  const bar = new Progress({ total: prompts.length * variants.length * a.steps, label: 'sample', stream: err });
  const rows: Float32Array[][] = [];
  let done = 0;
  let hw: [number, number] = [0, 0];
  for (const prompt of prompts) {
    const row: Float32Array[] = [];
    for (const base of variants) {
      if (a.lora) setLoRABypass(unet, base);
      const latents = concat(seeds.map((sd) => Tensor.randn([1, C, s, s], new Generator(sd))), 0);
      const res = await pipe.generate({
        prompt: new Array<string>(seeds.length).fill(prompt), numInferenceSteps: a.steps, guidanceScale: a.guidance, eta: a.eta, latents, seed: seeds[0],
        onStep: () => bar.update(++done),
      });
      const img = res.images!;
      const [, , h, w] = img.shape;
      hw = [h, w];
      const all = await img.toArray();
      for (let i = 0; i < seeds.length; i++) row.push(all.slice(i * 3 * h * w, (i + 1) * 3 * h * w));
      for (const t of [latents, img, res.latents, res.promptEmbeds, res.negativePromptEmbeds]) t?.dispose();
    }
    rows.push(row);
  }
  bar.done();
  const grid = tileImages(rows, hw[0], hw[1], a.lora ? seeds.length : -1);
  writePng(a.out, grid.data, grid.shape);
  err.write(`wrote ${a.out} (${grid.shape[2]}x${grid.shape[1]}: ${prompts.length} prompts × ${seeds.length} seeds${a.lora ? ', base | tuned' : ''})\n`);
  return 0;
}
