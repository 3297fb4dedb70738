// `npm run toy:eval [-- --model DIR --prompts 16 --seeds 6 --guidance 5 --steps 20 --out DIR]`: the hidden judge's
// verdict on a toy model: held-out prompts × fixed seeds, alignment rate and aesthetic with their seed-to-seed
// spread, and (with --out) every image as a PNG with an index.json.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initGpu } from '../src/gpu/runtime.js';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.js';
import { writePng } from '../src/io/image.js';
import { HELD_OUT_PROMPTS } from '../src/toy/captions.js';
import { evaluatePipeline, formatEvalSummary } from '../src/toy/evaluate.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'assets/toy/base' },
    prompts: { type: 'string', default: '16' },
    seeds: { type: 'string', default: '6' },
    guidance: { type: 'string', default: '5' },
    steps: { type: 'string', default: '20' },
    out: { type: 'string' },
  },
});
await initGpu();
const t0 = Date.now();
const pipe = await StableDiffusionPipeline.fromPretrained(values.model!);
const prompts = HELD_OUT_PROMPTS.slice(0, Number(values.prompts));
const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => i);
const { rows, summary } = await evaluatePipeline(pipe, prompts, seeds, {
  steps: Number(values.steps), guidanceScale: Number(values.guidance),
  onProgress: (d, n) => console.log(`sampled ${d}/${n} (${((Date.now() - t0) / 1000).toFixed(0)} s)`),
});
console.log(formatEvalSummary(summary));
for (const p of prompts) {
  const r = rows.filter((x) => x.prompt === p);
  console.log(`${p.padEnd(44)} match ${r.filter((x) => x.match).length}/${r.length}  graded ${(r.reduce((s, x) => s + x.alignment, 0) / r.length).toFixed(2)}`);
}
if (values.out) {
  fs.mkdirSync(values.out, { recursive: true });
  const index = rows.map((r, i) => {
    const file = `${String(i).padStart(4, '0')}.png`;
    writePng(path.join(values.out!, file), r.image, [3, 32, 32]);
    return { file, prompt: r.prompt, seed: r.seed, match: r.match, alignment: r.alignment, aesthetic: r.aesthetic };
  });
  fs.writeFileSync(path.join(values.out, 'index.json'), `${JSON.stringify(index, null, 1)}\n`);
}
console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
pipe.dispose();
