// `lpo score`: a quick look at what an LRM thinks of images or latents for a prompt at a timestep.
// PNG/JPEG images are VAE-encoded (posterior mean × scaling factor) and noised to --t with --seed; latents
// (.safetensors, [N, C, h, w] or [C, h, w]) are scored as they are, as x_t.
import { UsageError } from '../errors.js';
import { initGpu } from '../gpu/runtime.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { noGrad } from '../autograd/tape.js';
import { scale } from '../tensor/ops/elementwise.js';
import { Generator } from '../tensor/random.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { readModelImage } from '../io/pairs/image.js';
import { LatentRewardModel } from '../lrm/model.js';
import { lrmScheduler } from '../lrm/noise.js';
import { defineCommand, parseCommand } from './args.js';
import { loadVae, modelResolution } from './lrm_data.js';

export const scoreSpec = defineCommand({
  name: 'score',
  summary: 'scores images or latents for a prompt with a latent reward model',
  details: 'Usage: lpo score --lrm <dir> --prompt <text> <image.png|image.jpg|latents.safetensors>',
  positionals: [{ name: 'input', help: 'an image (PNG/JPEG) or a latents .safetensors file', required: true, path: 'file' }],
  options: {
    lrm: { type: 'string', required: true, path: 'dir', value: 'lrm folder', help: 'a saved LRM' },
    prompt: { type: 'string', required: true, value: 'text', help: 'the prompt to judge against' },
    t: { type: 'int', min: 0, max: 999, default: 1, help: 'timestep the latents are (or are noised to)' },
    model: { type: 'string', path: 'dir', value: 'diffusers folder', help: "base model whose VAE encodes images (default: the LRM's base_model)" },
    key: { type: 'string', value: 'name', help: 'tensor of a latents file (default: its only or first tensor)' },
    seed: { type: 'int', min: 0, default: 0, help: 'seed of the noise added to encoded images' },
  },
  checks: [
    (a) => (/\.(png|jpe?g|safetensors)$/i.test(a.input as string) ? null : `<input> must be a .png, .jpg or .safetensors file, got '${a.input}'`),
    (a) => (a.key !== undefined && !(a.input as string).endsWith('.safetensors') ? '--key applies to a latents .safetensors <input>' : null),
  ],
});

async function latentsOf(file: string, key: string | undefined, model: LatentRewardModel): Promise<Tensor> {
  const f = await SafetensorsFile.open(file);
  try {
    const k = key ?? f.keys()[0];
    if (!k || !f.has(k)) throw new UsageError(`${file}: no tensor '${key ?? ''}' (it has ${f.keys().join(', ') || 'none'})`);
    const h = await f.read(k);
    const shape = h.shape.length === 3 ? [1, ...h.shape] : [...h.shape];
    const c = model.unet.config.inChannels;
    if (shape.length !== 4 || shape[1] !== c) throw new UsageError(`${file}: '${k}' is [${h.shape}], expected [N, ${c}, h, w] or [${c}, h, w]`);
    return Tensor.fromArray(Float32Array.from(h.data), shape);
  } finally {
    f.closeSync();
  }
}

export async function scoreCommand(argv: string[]): Promise<number> {
  const a = parseCommand(scoreSpec, argv);
  if (!a) return 0;
  await initGpu();
  const model = await LatentRewardModel.fromPretrained(a.lrm);
  try {
    let x: Tensor;
    if (a.input.endsWith('.safetensors')) x = await latentsOf(a.input, a.key, model);
    else {
      const vae = await loadVae(a.model ?? model.baseModel);
      if (!vae) throw new UsageError(`scoring an image needs the base model's VAE: pass --model <diffusers folder>`);
      try {
        const r = modelResolution(model, vae);
        const img = readModelImage(a.input, [r, r]);
        const s = lrmScheduler(model);
        x = noGrad(() => tidy(() => {
          const dist = vae.encode(Tensor.fromArray(img, [1, 3, r, r]));
          const z0 = scale(dist.mean, model.config.scalingFactor);
          dist.dispose();
          const eps = Tensor.randn(z0.shape, new Generator(a.seed));
          return s.addNoise(z0, eps, a.t);
        }));
      } finally {
        vae.dispose();
      }
    }
    const scores = noGrad(() => model.score(x, a.t, [a.prompt]));
    const v = await scores.toArray();
    scores.dispose();
    x.dispose();
    v.forEach((s, i) => process.stdout.write(`${a.input}${v.length > 1 ? `[${i}]` : ''}\tt=${a.t}\tscore ${s.toFixed(4)}\n`));
  } finally {
    model.dispose();
  }
  return 0;
}
