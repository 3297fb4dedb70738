// StableDiffusionPipeline: (1) the CFG/DDIM/decode logic with tiny stand-in models against a float64 host
// computation; (2) the golden diffusers run (pipeline/) with the golden text encoder, U-Net and VAE loaded by
// StableDiffusionPipeline.fromPretrained from a diffusers folder.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2 } from './helpers.js';
import { readSafetensors } from './ref/st.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { add, affine, scale } from '../src/tensor/ops/elementwise.js';
import { reshape, slice } from '../src/tensor/ops/layout.js';
import { DDIMScheduler } from '../src/diffusion/ddim.js';
import { StableDiffusionPipeline, type StepInfo } from '../src/diffusion/pipeline.js';
import { makeSdFolder } from './ref/sd_folder.js';

const ROOT = resolve(__dirname, '..');
const GOLDEN = [join(ROOT, 'test/fixtures/golden'), resolve(ROOT, '../shared/golden')].find((d) => existsSync(join(d, 'pipeline/pipeline.json')))!;
const ddimConfig = JSON.parse(readFileSync(join(GOLDEN, 'ddim/scheduler_config.json'), 'utf8'));

beforeAll(setupGpu);

// ---- stand-ins: text embedding = f(ids), U-Net = 0.9·x + ctx[b,0,0] + 1e-4·t, VAE = 2·z[:, :3]
const L = 77;
const D = 3;
const embHost = (ids: number[]) => Float64Array.from({ length: L * D }, (_, k) => Math.fround(((ids[Math.floor(k / D)] % 97) - 48) * 0.01 + (k % D) * 0.1));
const stub = {
  tokenizer: { encode: (s: string) => Array.from({ length: L }, (_, i) => (i < s.length ? s.charCodeAt(i) : 7 + i)) },
  textEncoder: {
    forward: (ids: readonly (readonly number[])[]) => {
      const data = new Float64Array(ids.length * L * D);
      ids.forEach((r, b) => data.set(embHost([...r]), b * L * D));
      return { lastHiddenState: Tensor.fromArray(data, [ids.length, L, D]) };
    },
  },
  unet: {
    config: { inChannels: 4 },
    forward: (x: Tensor, t: readonly number[] | number, ctx: Tensor) => {
      const tt = typeof t === 'number' ? t : t[0];
      const c0 = reshape(slice(slice(ctx, 1, { end: 1 }), 2, { end: 1 }), [ctx.shape[0], 1, 1, 1]);
      return { sample: affine(add(scale(x, 0.9), c0), { shift: 1e-4 * tt }) };
    },
  },
  vae: {
    config: { latentChannels: 4, scalingFactor: 0.18215, blockOutChannels: [8] },
    decode: (z: Tensor) => scale(slice(z, 1, { end: 3 }), 2),
  },
};

describe('StableDiffusionPipeline with stand-in models', () => {
  it('CFG, DDIM (η = 0 and 1), seeded latents, per-step callback and decode match a float64 host run (relL2 < 1e-5)', async () => {
    const B = 2;
    const [h, w] = [5, 3];
    const n = B * 4 * h * w;
    const per = n / B;
    for (const eta of [0, 1]) {
      const sched = DDIMScheduler.fromConfig(ddimConfig);
      const pipe = new StableDiffusionPipeline({ ...stub, scheduler: sched, sampleSize: 1 });
      const seen: number[] = [];
      const steps: Float32Array[] = [];
      const res = await pipe.generate({
        prompt: ['a cat', 'a dog'], negativePrompt: 'blurry', numInferenceSteps: 5, guidanceScale: 6, eta, seed: 42, height: h, width: w,
        onStep: async (s: StepInfo) => { seen.push(s.timestep); steps.push(await s.latents.toArray()); },
      });
      expect(seen).toEqual([801, 601, 401, 201, 1]);
      // host float64 replay: same generator stream (latents first, then the per-step noise)
      const gen = new Generator(42);
      let x = Float64Array.from(gen.normalArray(n));
      const ctxU = ['blurry', 'blurry'].map((p) => embHost(stub.tokenizer.encode(p))[0]);
      const ctxC = ['a cat', 'a dog'].map((p) => embHost(stub.tokenizer.encode(p))[0]);
      const ref = DDIMScheduler.fromConfig(ddimConfig);
      ref.setTimesteps(5);
      let worst = 0;
      ref.timesteps.forEach((t, i) => {
        const sc = ref.stepScalars(t, eta);
        const z = eta > 0 ? gen.normalArray(n) : null;
        const nx = new Float64Array(n);
        for (let k = 0; k < n; k++) {
          const b = Math.floor(k / per);
          const eu = 0.9 * x[k] + ctxU[b] + 1e-4 * t;
          const ec = 0.9 * x[k] + ctxC[b] + 1e-4 * t;
          const eps = eu + 6 * (ec - eu);
          const x0 = (x[k] - Math.sqrt(1 - sc.alphaProdT) * eps) / Math.sqrt(sc.alphaProdT);
          nx[k] = Math.sqrt(sc.alphaProdTPrev) * x0 + Math.sqrt(1 - sc.alphaProdTPrev - sc.stdDevT ** 2) * eps + (z ? sc.stdDevT * z[k] : 0);
        }
        x = nx;
        worst = Math.max(worst, relL2(steps[i], x));
      });
      const img = new Float64Array(B * 3 * h * w);
      for (let b = 0; b < B; b++) for (let k = 0; k < 3 * h * w; k++) img[b * 3 * h * w + k] = Math.min(1, Math.max(0, (2 * x[b * per + k]) / 0.18215 / 2 + 0.5));
      const eImg = relL2(await res.images!.toArray(), img);
      const eLat = relL2(await res.latents.toArray(), x);
      console.log(`η=${eta}: worst step relL2 ${worst.toExponential(2)}, final ${eLat.toExponential(2)}, image ${eImg.toExponential(2)}`);
      expect(res.images!.shape).toEqual([B, 3, h, w]);
      expect(worst).toBeLessThan(1e-5);
      expect(eLat).toBeLessThan(1e-5);
      expect(eImg).toBeLessThan(1e-5);
      // given latents reproduce the seeded run
      const again = await pipe.generate({
        prompt: ['a cat', 'a dog'], negativePrompt: 'blurry', numInferenceSteps: 5, guidanceScale: 6, eta,
        generator: (() => { const g = new Generator(42); g.normalArray(n); return g; })(),
        latents: Tensor.fromArray(new Generator(42).normalArray(n), [B, 4, h, w]), outputType: 'latent',
      });
      expect(again.images).toBeUndefined();
      expect(relL2(await again.latents.toArray(), await res.latents.toArray())).toBe(0);
    }
  });

  it('guidance ≤ 1 runs the conditional batch only; shape errors are clear', async () => {
    const pipe = new StableDiffusionPipeline({ ...stub, scheduler: DDIMScheduler.fromConfig(ddimConfig), sampleSize: 2 });
    const r = await pipe.generate({ prompt: 'x', numInferenceSteps: 2, guidanceScale: 1, outputType: 'latent' });
    expect(r.negativePromptEmbeds).toBeNull();
    expect(r.latents.shape).toEqual([1, 4, 2, 2]);
    await expect(pipe.generate({ prompt: 'x', numInferenceSteps: 2, latents: Tensor.fromArray(new Float32Array(8), [2, 4, 1, 1]) })).rejects.toThrow(/latents must be \[1, 4, h, w\]/);
    await expect(pipe.generate({ prompt: ['a', 'b'], negativePrompt: ['c'], numInferenceSteps: 2 })).rejects.toThrow(/1 negative prompts for 2 prompts/);
  });
});

// ---- the golden diffusers run

describe('StableDiffusionPipeline vs golden diffusers (pipeline/)', () => {
  it('prompt/negative embeddings, per-step latents, final latents and image: relL2 < 1e-4', async () => {
    const pj = JSON.parse(readFileSync(join(GOLDEN, 'pipeline/pipeline.json'), 'utf8'));
    const inp = readSafetensors(join(GOLDEN, 'pipeline/inputs.safetensors'));
    const out = readSafetensors(join(GOLDEN, 'pipeline/outputs.safetensors'));
    // Loaded the way users load a diffusers folder (model_index.json + component folders).
    const pipe = await StableDiffusionPipeline.fromPretrained(makeSdFolder(mkdtempSync(join(tmpdir(), 'lpo-sd-')), GOLDEN));
    const lat = inp.get('latents')!;
    const steps: Float32Array[] = [];
    const res = await pipe.generate({
      prompt: pj.prompt, negativePrompt: pj.negative_prompt ?? undefined, numInferenceSteps: pj.num_inference_steps,
      guidanceScale: pj.guidance_scale, eta: pj.eta, latents: Tensor.fromArray(lat.data, lat.shape),
      onStep: async (s) => { steps.push(await s.latents.toArray()); },
    });
    expect(res.timesteps).toEqual(pj.timesteps);
    const errs: Record<string, number> = {
      prompt_embeds: relL2(await res.promptEmbeds.toArray(), out.get('prompt_embeds')!.data),
      negative_prompt_embeds: relL2(await res.negativePromptEmbeds!.toArray(), out.get('negative_prompt_embeds')!.data),
      final_latents: relL2(await res.latents.toArray(), out.get('final_latents')!.data),
      image: relL2(await res.images!.toArray(), out.get('image')!.data),
    };
    steps.forEach((s, i) => { errs[`step.${i}.latents`] = relL2(s, out.get(`step.${i}.latents`)!.data); });
    console.log(Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', '));
    for (const [k, v] of Object.entries(errs)) expect(v, k).toBeLessThan(1e-4);
    pipe.dispose();
  });
});
