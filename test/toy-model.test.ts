// The toy base model: the committed checkpoint loads with StableDiffusionPipeline.fromPretrained and samples; the
// pre-training pipeline runs end to end at toy-of-toy size and writes a folder that loads back with the weights
// it trained; pairs are drawn from a model and written as a readable pair folder.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.js';
import { openPairFolder } from '../src/io/pairs/index.js';
import { folderBytes } from '../src/toy/checkpoint.js';
import { pretrainToyBase, type PretrainConfig } from '../src/toy/pretrain.js';
import { sampleImages } from '../src/toy/sample.js';
import { judgeSamples, summariseSamples } from '../src/toy/evaluate.js';
import { generatePairs, writeToyPairs } from '../src/toy/pairs.js';
import { TOY_UNET_CONFIG, createToyModels } from '../src/toy/model.js';
import { gpu } from '../src/gpu/runtime.js';
import { Ema } from '../src/toy/train_diffusion.js';
import { warmupCosine } from '../src/toy/data.js';
import { Tensor } from '../src/tensor/tensor.js';
import type { CLIPTextModel } from '../src/nn/clip.js';
import type { UNet2DConditionModel } from '../src/nn/unet.js';

const BASE = resolve(__dirname, '../assets/toy/base');
const tmp = mkdtempSync(join(tmpdir(), 'toy-model-'));

beforeAll(setupGpu);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('training helpers', () => {
  it('Ema.update moves the shadow to decay·shadow + (1 − decay)·param; copyToParams writes it back', async () => {
    const p = Tensor.fromArray([1, -2, 3, 0.5], [2, 2]);
    const ema = new Ema([p]);
    p.write([3, 2, 1, -0.5]);
    const live = gpu().pool.stats().inUseBuffers;
    ema.update(0.9);
    // Nothing but the shadow survives an update (a leak here slowed the pre-training down step after step).
    expect(gpu().pool.stats().inUseBuffers).toBe(live);
    const want = [0.9 * 1 + 0.1 * 3, 0.9 * -2 + 0.1 * 2, 0.9 * 3 + 0.1 * 1, 0.9 * 0.5 + 0.1 * -0.5];
    const got = await ema.shadow[0].toArray();
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
    ema.copyToParams();
    (await p.toArray()).forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
    ema.dispose();
    p.dispose();
  });

  it('createToyModels: a U-Net override changes only the U-Net; the VAE and text encoder draw the same weights', async () => {
    const plain = createToyModels(5);
    const wide = createToyModels(5, { unet: { down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'], up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'] } });
    try {
      expect(wide.unet.config.downBlockTypes).toEqual(['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D']);
      expect(plain.unet.config.downBlockTypes).toEqual(TOY_UNET_CONFIG.down_block_types);
      // Two more transformers at the first level: more parameters.
      expect(wide.unet.numParameters()).toBeGreaterThan(plain.unet.numParameters());
      for (const [a, b] of [[plain.vae, wide.vae], [plain.textEncoder, wide.textEncoder]] as const) {
        const sa = a.stateDict();
        const sb = b.stateDict();
        expect([...sb.keys()]).toEqual([...sa.keys()]);
        for (const [k, t] of sa) expect(await sb.get(k)!.toArray(), k).toEqual(await t.toArray());
      }
    } finally {
      for (const m of [plain, wide]) for (const x of [m.vae, m.textEncoder, m.unet]) x.dispose();
    }
  });

  it('warmupCosine ramps linearly, peaks, and decays to floor·peak', () => {
    expect(warmupCosine(0, 100, 1, 10)).toBeCloseTo(0.1, 12);
    expect(warmupCosine(9, 100, 1, 10)).toBeCloseTo(1, 12);
    expect(warmupCosine(10, 100, 1, 10)).toBeCloseTo(1, 12);
    expect(warmupCosine(55, 100, 1, 10)).toBeCloseTo(0.55, 12);
    expect(warmupCosine(100, 100, 1, 10)).toBeCloseTo(0.1, 12);
  });
});

describe('committed toy base checkpoint', () => {
  it('is a diffusers folder of at most 15 MB with a README naming its seed', () => {
    for (const f of ['model_index.json', 'scheduler/scheduler_config.json', 'tokenizer/merges.txt', 'tokenizer/vocab.json', 'text_encoder/config.json', 'unet/config.json', 'vae/config.json', 'README.md']) {
      expect(existsSync(join(BASE, f)), f).toBe(true);
    }
    expect(folderBytes(BASE)).toBeLessThanOrEqual(15e6);
    expect(readFileSync(join(BASE, 'README.md'), 'utf8')).toMatch(/seed \*\*\d+\*\*/);
  });

  it('loads with StableDiffusionPipeline.fromPretrained and samples 32×32 images the judge can score', async () => {
    const pipe = await StableDiffusionPipeline.fromPretrained(BASE);
    try {
      expect(pipe.sampleSize).toBe(8);
      expect(pipe.vaeScaleFactor).toBe(4);
      const reqs = [{ prompt: 'a red circle', seed: 0 }, { prompt: 'two blue squares', seed: 1 }];
      const out = await sampleImages(pipe, reqs, { steps: 3, guidanceScale: 5 });
      expect(out).toHaveLength(2);
      for (const s of out) {
        expect(s.image.length).toBe(3 * 32 * 32);
        expect(s.latent.length).toBe(4 * 8 * 8);
        expect(s.image.every((v) => v >= 0 && v <= 1)).toBe(true);
        expect(s.latent.every(Number.isFinite)).toBe(true);
      }
      // The same (prompt, seed) gives the same image whatever else shares the batch.
      const again = await sampleImages(pipe, [reqs[1]], { steps: 3, guidanceScale: 5 });
      let worst = 0;
      for (let k = 0; k < again[0].image.length; k++) worst = Math.max(worst, Math.abs(again[0].image[k] - out[1].image[k]));
      expect(worst).toBeLessThan(1e-4);
      const s = summariseSamples(judgeSamples(out));
      expect(s.images).toBe(2);
      expect(s.aesthetic.mean).toBeGreaterThanOrEqual(0);
    } finally {
      pipe.dispose();
    }
  });
});

describe('toy pre-training and pairs (mechanics, tiny settings)', () => {
  const out = join(tmp, 'base');
  const cfg: PretrainConfig = {
    seed: 7,
    vae: { steps: 2, batch: 2, lr: 1e-3, klWeight: 1e-4 },
    datasetSize: 8,
    scalingSamples: 8,
    diffusion: { steps: 2, batch: 4, promptsPerBatch: 2, lr: 1e-3, captionDropout: 0.5 },
  };

  it('pre-trains every stage and writes a folder that loads back with the trained weights', async () => {
    const lines: string[] = [];
    const res = await pretrainToyBase(out, cfg, { log: (l) => lines.push(l) });
    expect(res.vaeCurve.length).toBeGreaterThan(0);
    expect(res.diffusionCurve.length).toBeGreaterThan(0);
    expect(res.scalingFactor).toBeGreaterThan(0);
    expect(lines.some((l) => l.startsWith('diffusion step 2/2'))).toBe(true);
    const pipe = await StableDiffusionPipeline.fromPretrained(out);
    try {
      expect(pipe.vae.config.scalingFactor).toBeCloseTo(res.scalingFactor, 5);
      const trained = res.models.unet.stateDict();
      for (const [k, p] of (pipe.unet as UNet2DConditionModel).stateDict()) {
        const a = await p.toArray();
        const b = await trained.get(k)!.toArray();
        expect(a, k).toEqual(b);
      }
      const te = (pipe.textEncoder as CLIPTextModel).stateDict();
      const w = await te.get('text_model.encoder.layers.0.mlp.fc1.weight')!.toArray();
      const w0 = await res.models.textEncoder.stateDict().get('text_model.encoder.layers.0.mlp.fc1.weight')!.toArray();
      let worst = 0;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i] - w0[i]) / Math.max(1e-3, Math.abs(w0[i])));
      expect(worst).toBeLessThan(1e-3); // fp16 storage
      expect((pipe.unet as UNet2DConditionModel).config.blockOutChannels).toEqual(TOY_UNET_CONFIG.block_out_channels);
    } finally {
      pipe.dispose();
      for (const m of [res.models.vae, res.models.textEncoder, res.models.unet]) m.dispose();
    }
  });

  it('draws labelled pairs from a model and writes a pair folder the reader takes', async () => {
    const pipe = await StableDiffusionPipeline.fromPretrained(out);
    try {
      const pairs = await generatePairs(pipe, { prompts: 3, pairsPerPrompt: [0, 1], steps: 2, guidanceScales: [5], seed: 3, validationFraction: 0 });
      expect(pairs).toHaveLength(6); // two pairs per prompt
      for (const p of pairs) {
        expect(p.numExamplesPerPrompt).toBe(2);
        expect(p.label.label0 + p.label.label1).toBe(1);
        expect(p.seeds[0]).not.toBe(p.seeds[1]);
      }
      const dir = join(tmp, 'pairs');
      await writeToyPairs(dir, pairs, [4, 8, 8]);
      const ds = await openPairFolder(dir, { resolution: 32 });
      let n = 0;
      for await (const r of ds.rows()) {
        expect(r.caption).toBe(pairs[n].caption);
        expect(r.latent1?.data.length).toBe(256);
        n++;
      }
      expect(n).toBe(6);
    } finally {
      pipe.dispose();
    }
  });

  it('imagesPerPrompt: n images per prompt, sampled once, compared in all n(n−1)/2 pairings', async () => {
    const pipe = await StableDiffusionPipeline.fromPretrained(out);
    try {
      let total = 0;
      const pairs = await generatePairs(pipe, { prompts: 2, imagesPerPrompt: 3, steps: 2, guidanceScales: [3, 5], seed: 4, validationFraction: 0, onProgress: (_, n) => { total = n; } });
      expect(total).toBe(6); // 2 prompts × 3 images, not 2 × 3 pairs × 2
      expect(pairs).toHaveLength(6);
      for (const caption of new Set(pairs.map((p) => p.caption))) {
        const own = pairs.filter((p) => p.caption === caption);
        expect(own).toHaveLength(3);
        const seeds = own.flatMap((p) => p.seeds);
        expect(new Set(seeds).size).toBe(3);
        for (const sd of new Set(seeds)) expect(seeds.filter((x) => x === sd)).toHaveLength(2);
        for (const p of own) expect(p.numExamplesPerPrompt).toBe(3);
        // The same draw is the same image (and judgement) in both of its pairs.
        const bySeed = new Map<number, Float32Array>();
        for (const p of own) for (const k of [0, 1] as const) {
          const prev = bySeed.get(p.seeds[k]);
          if (prev) expect(p.images[k]).toBe(prev);
          else bySeed.set(p.seeds[k], p.images[k]);
        }
      }
      await expect(generatePairs(pipe, { prompts: 1, imagesPerPrompt: 1, steps: 2 })).rejects.toThrow(/imagesPerPrompt/);
    } finally {
      pipe.dispose();
    }
  });
});
