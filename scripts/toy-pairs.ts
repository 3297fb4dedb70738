// `npm run toy:pairs [-- --model DIR --out DIR --prompts 96 --seed 0 --temperature 0.1 --overwrite]`: the toy
// world's Pick-a-Pic: the base model's image pairs for training prompts, labelled by the hidden judge with a
// Bradley–Terry coin flip and ties, written as a pair folder (pairs.jsonl, images/, latents.safetensors).
import { parseArgs } from 'node:util';
import { initGpu } from '../src/gpu/runtime.js';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.js';
import { generatePairs, pairStats, writeToyPairs } from '../src/toy/pairs.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'assets/toy/base' },
    out: { type: 'string', default: 'out/toy-pairs' },
    prompts: { type: 'string', default: '96' },
    seed: { type: 'string', default: '0' },
    temperature: { type: 'string', default: '0.1' },
    overwrite: { type: 'boolean', default: false },
  },
});
await initGpu();
const t0 = Date.now();
const pipe = await StableDiffusionPipeline.fromPretrained(values.model!);
const pairs = await generatePairs(pipe, {
  prompts: Number(values.prompts), seed: Number(values.seed), temperature: Number(values.temperature),
  onProgress: (d, n) => console.log(`sampled ${d}/${n} images (${((Date.now() - t0) / 1000).toFixed(0)} s)`),
});
const { rows } = await writeToyPairs(values.out!, pairs, [4, pipe.sampleSize, pipe.sampleSize], { overwrite: values.overwrite });
console.log(`wrote ${rows} pairs to ${values.out}`);
console.log(JSON.stringify(pairStats(pairs), null, 1));
console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
pipe.dispose();
