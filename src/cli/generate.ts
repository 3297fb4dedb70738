// `lpo generate`: text-to-image from a diffusers Stable Diffusion folder (CFG + DDIM), written as PNG.
import { initGpu } from '../gpu/runtime.js';
import { writePng } from '../io/image.js';
import { StableDiffusionPipeline } from '../diffusion/pipeline.js';
import { defineCommand, parseCommand } from './args.js';
import { Progress } from './progress.js';

export const generateSpec = defineCommand({
  name: 'generate',
  summary: 'text-to-image from a diffusers Stable Diffusion folder (CFG + DDIM), written as PNG',
  options: {
    model: { type: 'string', required: true, path: 'dir', value: 'diffusers folder', help: 'the model (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)' },
    prompt: { type: 'string', required: true, value: 'text', help: 'what to draw' },
    negative: { type: 'string', value: 'text', help: 'negative prompt (default: the empty prompt)' },
    steps: { type: 'int', min: 1, default: 20, help: 'DDIM steps' },
    guidance: { type: 'number', min: 0, default: 7.5, help: 'classifier-free guidance scale (≤ 1 turns CFG off)' },
    seed: { type: 'int', min: 0, default: 0, help: 'seed of the initial latents' },
    eta: { type: 'number', min: 0, default: 0, help: 'DDIM η (0: deterministic)' },
    height: { type: 'int', min: 8, value: 'px', help: "image height (default: the U-Net's sample_size × 8)" },
    width: { type: 'int', min: 8, value: 'px', help: "image width (default: the U-Net's sample_size × 8)" },
    fp16: { type: 'boolean', help: 'prefer the .fp16 weight variants' },
    out: { type: 'string', short: 'o', default: 'out.png', ext: ['.png'], path: 'parent', value: 'file.png', help: 'output image' },
    bestOf: { type: 'int', min: 2, value: 'K', requires: ['lrm'], help: 'LRM-guided step-level best-of-K (needs --lrm): keep the best of K candidates at every step' },
    lrm: { type: 'string', path: 'dir', value: 'lrm folder', requires: ['bestOf'], help: 'the latent reward model of --best-of' },
  },
});

export async function generate(argv: string[]): Promise<number> {
  const a = parseCommand(generateSpec, argv);
  if (!a) return 0;
  await initGpu();
  const err = process.stderr;
  const t0 = Date.now();
  err.write(`loading ${a.model}\n`);
  const pipe = await StableDiffusionPipeline.fromPretrained(a.model, { preferFp16: a.fp16 });
  err.write(`loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  if (a.bestOf !== undefined || a.lrm !== undefined) {
    await (await import('./best_of.js')).generateBestOf(pipe, a, err);
    return 0;
  }
  const t1 = Date.now();
  const bar = new Progress({ total: a.steps, label: 'denoise', stream: err });
  const res = await pipe.generate({
    prompt: a.prompt,
    negativePrompt: a.negative,
    numInferenceSteps: a.steps,
    guidanceScale: a.guidance,
    seed: a.seed,
    eta: a.eta,
    height: a.height,
    width: a.width,
    onStep: ({ step, timestep }) => bar.update(step + 1, { t: timestep }),
  });
  bar.done();
  const img = res.images!;
  const data = await img.toArray();
  const [, c, h, w] = img.shape;
  writePng(a.out, data.subarray(0, c * h * w), [c, h, w]);
  err.write(`wrote ${a.out} (${w}x${h}) in ${((Date.now() - t1) / 1000).toFixed(1)} s\n`);
  return 0;
}
