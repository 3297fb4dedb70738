// `lpo generate`: text-to-image from a diffusers Stable Diffusion folder (CFG + DDIM), written as PNG.
import { existsSync, statSync } from 'node:fs';
import { LpoError } from '../errors.js';
import { initGpu } from '../gpu/runtime.js';
import { writePng } from '../io/image.js';
import { StableDiffusionPipeline } from '../diffusion/pipeline.js';

export class GenerateUsageError extends LpoError {}

const USAGE = `usage: lpo generate --model <diffusers folder> --prompt <text> [options]
  --negative <text>   negative prompt (default: the empty prompt)
  --steps <n>         DDIM steps (default 20)
  --guidance <g>      classifier-free guidance scale (default 7.5; ≤ 1 turns CFG off)
  --seed <n>          seed of the initial latents (default 0)
  --eta <η>           DDIM η (default 0)
  --height <px> --width <px>   image size (default: the U-Net's sample_size × 8)
  --fp16              prefer the .fp16 weight variants
  --out <file.png>    output (default out.png)`;

interface Args {
  model: string; prompt: string; negative?: string; steps: number; guidance: number; seed: number; eta: number;
  height?: number; width?: number; out: string; fp16: boolean;
}

function parse(args: string[]): Args | null {
  const a: Partial<Args> & { steps: number; guidance: number; seed: number; eta: number; out: string; fp16: boolean } = {
    steps: 20, guidance: 7.5, seed: 0, eta: 0, out: 'out.png', fp16: false,
  };
  const num = (flag: string, v: string | undefined, int: boolean, min: number): number => {
    const x = Number(v);
    if (v === undefined || !Number.isFinite(x) || (int && !Number.isInteger(x)) || x < min) {
      throw new GenerateUsageError(`${flag} needs ${int ? 'an integer' : 'a number'} ≥ ${min}, got ${v === undefined ? 'nothing' : `'${v}'`}`);
    }
    return x;
  };
  const str = (flag: string, v: string | undefined): string => {
    if (v === undefined) throw new GenerateUsageError(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < args.length; i++) {
    const f = args[i];
    switch (f) {
      case '--help': case '-h': console.log(USAGE); return null;
      case '--model': a.model = str(f, args[++i]); break;
      case '--prompt': a.prompt = str(f, args[++i]); break;
      case '--negative': case '--negative-prompt': a.negative = str(f, args[++i]); break;
      case '--steps': a.steps = num(f, args[++i], true, 1); break;
      case '--guidance': case '--guidance-scale': a.guidance = num(f, args[++i], false, 0); break;
      case '--seed': a.seed = num(f, args[++i], true, 0); break;
      case '--eta': a.eta = num(f, args[++i], false, 0); break;
      case '--height': a.height = num(f, args[++i], true, 8); break;
      case '--width': a.width = num(f, args[++i], true, 8); break;
      case '--out': case '-o': a.out = str(f, args[++i]); break;
      case '--fp16': a.fp16 = true; break;
      default: throw new GenerateUsageError(`unknown argument '${f}' (see lpo generate --help)`);
    }
  }
  if (!a.model) throw new GenerateUsageError('--model <diffusers folder> is required');
  if (a.prompt === undefined) throw new GenerateUsageError('--prompt <text> is required');
  if (!existsSync(a.model) || !statSync(a.model).isDirectory()) throw new GenerateUsageError(`model folder '${a.model}' does not exist`);
  if (!/\.png$/i.test(a.out)) throw new GenerateUsageError(`--out must name a .png file, got '${a.out}'`);
  return a as Args;
}

function bar(done: number, total: number, t: number, secs: number): string {
  const w = 30;
  const k = Math.round((done / total) * w);
  const rate = done > 0 ? `${(secs / done).toFixed(2)} s/step` : '';
  return `\r[${'#'.repeat(k)}${'.'.repeat(w - k)}] ${done}/${total} t=${t} ${rate}   `;
}

export async function generate(args: string[]): Promise<number> {
  const a = parse(args);
  if (!a) return 0;
  await initGpu();
  const err = process.stderr;
  const t0 = Date.now();
  err.write(`loading ${a.model}\n`);
  const pipe = await StableDiffusionPipeline.fromPretrained(a.model, { preferFp16: a.fp16 });
  err.write(`loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  const t1 = Date.now();
  const res = await pipe.generate({
    prompt: a.prompt,
    negativePrompt: a.negative,
    numInferenceSteps: a.steps,
    guidanceScale: a.guidance,
    seed: a.seed,
    eta: a.eta,
    height: a.height,
    width: a.width,
    onStep: ({ step, total, timestep }) => {
      err.write(bar(step + 1, total, timestep, (Date.now() - t1) / 1000));
    },
  });
  err.write('\n');
  const img = res.images!;
  const data = await img.toArray();
  const [, c, h, w] = img.shape;
  writePng(a.out, data.subarray(0, c * h * w), [c, h, w]);
  err.write(`wrote ${a.out} (${w}x${h}) in ${((Date.now() - t1) / 1000).toFixed(1)} s\n`);
  return 0;
}
