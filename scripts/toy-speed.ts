// `npm run toy:speed [-- --model DIR]`: how fast the toy base model runs here. U-Net forward at batch 1, 8,
// 64 and 192 (median of 5 synchronised runs after a warm-up) with its dispatch count (the runtime's counter,
// so also on adapters without timestamp queries), the VAE decode of 96 images, and a 20-step CFG sampling of
// 96 images (the demo's evaluation unit). Prints a table and one JSON line, with the machine's load average:
// on a shared machine the numbers scale with it.
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { gpu, initGpu } from '../src/gpu/runtime.js';
import { noGrad } from '../src/autograd/tape.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.js';
import { HELD_OUT_PROMPTS } from '../src/toy/captions.js';
import { sampleImages } from '../src/toy/sample.js';

const { values } = parseArgs({ options: { model: { type: 'string', default: 'assets/toy/base' }, runs: { type: 'string', default: '5' } } });
const g = await initGpu();
const pipe = await StableDiffusionPipeline.fromPretrained(values.model!);
const runs = Number(values.runs);

async function median(fn: () => void | Promise<void>): Promise<number> {
  await fn();
  await gpu().sync();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    await gpu().sync();
    ts.push(performance.now() - t);
  }
  ts.sort((a, b) => a - b);
  return ts[ts.length >> 1];
}

const gen = new Generator(0);
const ctxOne = pipe.encodePrompt(['a red circle left of a blue square']);
const unet: Record<string, { ms: number; msPerSample: number }> = {};
let dispatches: number | null = null;
for (const B of [1, 8, 64, 192]) {
  const x = Tensor.randn([B, 4, 8, 8], gen);
  const ctx = noGrad(() => Tensor.fromArray(new Float32Array(B * ctxOne.size), [B, ...ctxOne.shape.slice(1)]));
  const ms = await median(() => noGrad(() => pipe.unet.forward(x, 501, ctx).sample.dispose()));
  unet[`batch ${B}`] = { ms, msPerSample: ms / B };
  if (B === 1) {
    const d0 = g.counters.dispatches;
    noGrad(() => pipe.unet.forward(x, 501, ctx).sample.dispose());
    dispatches = g.counters.dispatches - d0;
  }
  x.dispose();
  ctx.dispose();
}
ctxOne.dispose();

const z = Tensor.randn([96, 4, 8, 8], gen);
const decodeMs = await median(() => noGrad(() => pipe.decodeLatents(z).dispose()));
z.dispose();

const requests = HELD_OUT_PROMPTS.slice(0, 16).flatMap((prompt) => [0, 1, 2, 3, 4, 5].map((seed) => ({ prompt, seed })));
const t = performance.now();
await sampleImages(pipe, requests, { steps: 20, guidanceScale: 5, batch: 96 });
const sampleMs = performance.now() - t;

console.log(`machine: ${os.cpus().length} CPU cores, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; adapter ${g.summary.description}`);
console.log(`U-Net forward (${dispatches ?? '?'} dispatches at batch 1):`);
for (const [k, v] of Object.entries(unet)) console.log(`  ${k.padEnd(10)} ${v.ms.toFixed(1).padStart(8)} ms  ${v.msPerSample.toFixed(2).padStart(7)} ms/sample`);
console.log(`VAE decode of 96 images: ${decodeMs.toFixed(0)} ms`);
console.log(`20-step CFG sampling of 96 images (U-Net at batch 192, text encoding and decode included): ${(sampleMs / 1000).toFixed(1)} s`);
console.log(JSON.stringify({ unet, dispatchesPerForward: dispatches, decode96Ms: decodeMs, sample96Ms: sampleMs, loadavg: os.loadavg() }));
pipe.dispose();
