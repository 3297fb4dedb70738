// LRM training on tiny configs: the learning-rate schedule, per-pair draws, gradient accumulation equal to one big
// batch, reproducibility, and a short run with validation, metrics and checkpoints.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { AutoencoderKL } from '../src/nn/vae.js';
import type { PairRow } from '../src/io/pairs/types.js';
import { memoryPairs } from '../src/io/pairs/index.js';
import { cleanLatents, PairDraws } from '../src/lrm/batch.js';
import { evaluateLrm } from '../src/lrm/eval.js';
import { LatentRewardModel } from '../src/lrm/model.js';
import { lrmScheduler } from '../src/lrm/noise.js';
import { LRM_TIMESTEPS, warmupDecayLr } from '../src/lrm/schedule.js';
import { accumulatePairGradients, trainLrm } from '../src/lrm/train.js';
import { relL2, setupGpu } from './helpers.js';
import { brightDarkDataset, brightDarkPairs, tinyLrm } from './lrm-tiny.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lpo-lrm-train-'));

beforeAll(async () => {
  await setupGpu();
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function rowsOf(n: number, seed: number): Promise<PairRow[]> {
  const out: PairRow[] = [];
  for await (const r of brightDarkDataset(n, seed, 8, { tieEvery: 3 }).rows()) out.push(r);
  return out;
}

/** The analytically-zero attention key-bias gradients are rounding noise; every other gradient is compared. */
const NOISE_ONLY = /self_attn\.k_proj\.bias$/;

describe('LRM training', () => {
  it('lr schedule: DeepSpeed WarmupDecayLR with log warm-up (step 0 at lr 0), then linear decay to 0', () => {
    const s = { maxLr: 1e-5, warmup: 500, total: 4000 };
    expect(warmupDecayLr(0, s)).toBe(0);
    expect(warmupDecayLr(1, s)).toBeCloseTo((1e-5 * Math.log(2)) / Math.log(500), 18);
    expect(warmupDecayLr(499, s)).toBeCloseTo(1e-5, 18);
    expect(warmupDecayLr(500, s)).toBeCloseTo(1e-5, 18);
    expect(warmupDecayLr(2250, s)).toBeCloseTo(5e-6, 18);
    expect(warmupDecayLr(4000, s)).toBe(0);
    expect(warmupDecayLr(0, { maxLr: 1, warmup: 0, total: 10 })).toBe(1);
    expect(() => warmupDecayLr(0, { maxLr: -1, warmup: 0, total: 10 })).toThrow(/maxLr/);
    expect(LRM_TIMESTEPS).toEqual(Array.from({ length: 20 }, (_, i) => 1 + 50 * i));
  });

  it('gradient accumulation over micro-batches gives the gradients (and the loss) of one big batch', async () => {
    const rows = await rowsOf(6, 31);
    const grads = async (micro: number) => {
      const m = tinyLrm(6);
      const r = await accumulatePairGradients(m, rows, { microBatch: micro, timesteps: LRM_TIMESTEPS, draws: new PairDraws(5), scheduler: lrmScheduler(m) });
      const g = new Map<string, Float32Array>();
      for (const [k, p] of m.namedParameters()) if (p.grad) g.set(k, await p.grad.toArray());
      m.dispose();
      return { ...r, g };
    };
    const big = await grads(6);
    for (const micro of [1, 4]) {
      const acc = await grads(micro);
      expect(Math.abs(acc.loss - big.loss) / Math.abs(big.loss)).toBeLessThan(1e-5);
      expect(acc.accuracy).toBe(big.accuracy);
      expect([...acc.g.keys()].sort()).toEqual([...big.g.keys()].sort());
      for (const [k, g] of big.g) {
        if (NOISE_ONLY.test(k)) expect(relL2(acc.g.get(k)!, new Float32Array(g.length)), k).toBeLessThan(1e-5);
        // float32 sums in another order (per micro-batch, then across): ~1e-5–3e-5 of rounding on the smallest
        // gradients (mid-block attn2.to_v); a lost or mis-scaled micro-batch is off by ≥ 0.1.
        else expect(relL2(acc.g.get(k)!, g), k).toBeLessThan(5e-5);
      }
    }
    // Every trainable part receives a gradient: U-Net, text encoder, both heads and τ.
    for (const k of ['unet.conv_in.weight', 'unet.mid_block.resnets.1.conv2.bias', 'text_encoder.text_model.final_layer_norm.weight', 'text_projection.weight', 'visual_projection.weight', 'logit_scale']) {
      expect(big.g.has(k), k).toBe(true);
    }
  });

  it('VAE-encoded images: the posterior sample × scaling factor, drawn per pair so micro-batches draw the same', async () => {
    const vae = new AutoencoderKL({ block_out_channels: [8, 8], layers_per_block: 1, norm_num_groups: 4, latent_channels: 4 }, { gen: new Generator(3) });
    const gen = new Generator(4);
    const pairs = Array.from({ length: 3 }, (_, i) => ({
      caption: `p${i}`, label0: 1, label1: 0, numExamplesPerPrompt: 1, image0: gen.uniformArray(3 * 16 * 16, -1, 1), image1: gen.uniformArray(3 * 16 * 16, -1, 1),
    }));
    const rows: PairRow[] = [];
    for await (const r of memoryPairs(pairs, { resolution: 16 }).rows()) rows.push(r);
    const src = { vae, latentShape: [4, 8, 8] as const, scalingFactor: 0.5 };
    const all = await cleanLatents(rows, src, new PairDraws(9)).toArray();
    const d = new PairDraws(9);
    const a = await cleanLatents(rows.slice(0, 2), src, d).toArray();
    const b = await cleanLatents(rows.slice(2), src, d).toArray();
    const per = 4 * 8 * 8;
    // [image_0s; image_1s] of the whole batch vs. the two micro-batches' layouts.
    const joined = new Float32Array(all.length);
    joined.set(a.subarray(0, 2 * per), 0);
    joined.set(b.subarray(0, per), 2 * per);
    joined.set(a.subarray(2 * per), 3 * per);
    joined.set(b.subarray(per), 5 * per);
    expect(relL2(joined, all)).toBeLessThan(1e-6);
    // = scaling × (mean + std·ε) with ε the draws' VAE noise.
    const x = Tensor.fromArray(new Float32Array([...rows.map((r) => r.image0!), ...rows.map((r) => r.image1!)].flatMap((v) => Array.from(v))), [6, 3, 16, 16]);
    const dist = vae.encode(x);
    const mean = await dist.mean.toArray();
    const std = await dist.std.toArray();
    const eps = new PairDraws(9).vaeNoiseFor(3, per);
    const ref = mean.map((m, i) => 0.5 * (m + std[i] * eps[i]));
    expect(relL2(all, ref)).toBeLessThan(1e-5);
    expect(() => cleanLatents(rows, { ...src, vae: undefined }, new PairDraws(1))).toThrow(/no pre-encoded latents and no VAE/);
    dist.dispose();
    x.dispose();
    vae.dispose();
  });

  it('a short run: validation before/after and every k steps, metrics.jsonl, best/ and final/ checkpoints, reproducible', async () => {
    const train = brightDarkDataset(16, 41, 8, { tieEvery: 5 });
    const val = brightDarkDataset(8, 42);
    const run = async (dir: string) => {
      const m = tinyLrm(7);
      const evals: number[] = [];
      const losses: number[] = [];
      const res = await trainLrm(m, train, val, {
        steps: 4, batchSize: 4, microBatch: 2, lr: 1e-3, warmupSteps: 2, evalEvery: 2, evalTimesteps: [1, 501], edgeEvalTimesteps: [1, 501, 951],
        outDir: dir, metricsFile: path.join(dir, 'metrics.jsonl'), seed: 3,
        onStep: (s) => losses.push(s.loss), onEval: (e) => evals.push(e.step),
      });
      return { m, res, evals, losses };
    };
    const d1 = path.join(tmp, 'run1');
    fs.mkdirSync(d1);
    const a = await run(d1);
    expect(a.evals).toEqual([0, 2, 4]);
    expect(a.res.evals[0].byTimestep.map((e) => e.t)).toEqual([1, 501, 951]);
    expect(a.res.evals[1].byTimestep.map((e) => e.t)).toEqual([1, 501]);
    expect(a.losses.every(Number.isFinite)).toBe(true);
    const lines = fs.readFileSync(path.join(d1, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.type === 'step').map((l) => l.step)).toEqual([1, 2, 3, 4]);
    expect(lines.filter((l) => l.type === 'step')[0].lr).toBe(0);
    expect(lines.filter((l) => l.type === 'eval')).toHaveLength(3);
    expect(fs.existsSync(path.join(d1, 'best', 'heads.safetensors'))).toBe(true);
    const final = await LatentRewardModel.fromPretrained(path.join(d1, 'final'));
    expect(relL2(await final.visualProjection.weight.toArray(), await a.m.visualProjection.weight.toArray())).toBe(0);
    // The final evaluation is of the trained model, and evaluation is deterministic for a seed.
    const again = await evaluateLrm(final, val, { timesteps: [1, 501, 951], seed: 3 });
    expect(again.byTimestep).toEqual(a.res.evals[2].byTimestep);

    const d2 = path.join(tmp, 'run2');
    fs.mkdirSync(d2);
    const b = await run(d2);
    expect(b.losses).toEqual(a.losses);
    for (const x of [a.m, b.m, final]) x.dispose();
  });

  it('bad options are ArgumentErrors', async () => {
    const m = tinyLrm(8);
    const ds = brightDarkDataset(4, 1);
    await expect(trainLrm(m, ds, null, { steps: 1, batchSize: 2, microBatch: 4 })).rejects.toThrow(/microBatch 4 > batchSize 2/);
    await expect(trainLrm(m, ds, null, { steps: 0 })).rejects.toThrow(/steps/);
    await expect(trainLrm(m, brightDarkDataset(0, 1), null, { steps: 1, batchSize: 2 })).rejects.toThrow(/no training pairs/);
    m.dispose();
    expect(brightDarkPairs(2, 1)).toHaveLength(2);
  });

  it('evaluateLrm scores once for several labellings: the same labels give the same accuracy, swapped ones its complement', async () => {
    const m = tinyLrm(9);
    const data = brightDarkDataset(10, 43, 8, { tieEvery: 4 });
    const r = await evaluateLrm(m, data, {
      timesteps: [1, 751], seed: 2, batchPairs: 3,
      extraLabels: [(row) => [row.label0, row.label1], (row) => [row.label1, row.label0]],
    });
    expect(r.pairs).toBe(10);
    for (const e of r.byTimestep) {
      expect(e.extra).toHaveLength(2);
      expect(e.extra[0]).toBe(e.accuracy);
      // Per pair, accuracy under a labelling plus under its swap is label0 + label1 = 1 (scores never tie here).
      expect(e.extra[1]).toBeCloseTo(1 - e.accuracy, 12);
    }
    // The plain result is the one without extra labellings.
    const plain = await evaluateLrm(m, data, { timesteps: [1, 751], seed: 2, batchPairs: 3 });
    expect(plain.byTimestep.map((e) => e.accuracy)).toEqual(r.byTimestep.map((e) => e.accuracy));
    m.dispose();
  });
});
