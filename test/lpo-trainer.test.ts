// The LPO trainer on a tiny U-Net + tiny LRM: one iteration's mechanics (pairs, AdamW steps on the LoRA only,
// metrics, no VAE anywhere, the reference untouched), a GRPO iteration, exact resume from a checkpoint, the
// prompt files and the heterogeneous-LRM check.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { gpu } from '../src/gpu/runtime.js';
import { tinyLrm } from './lrm-tiny.js';
import { GOLDEN, sdScheduler, tinyModels, tinyWorld } from './lpo-tiny.js';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.js';
import { CLIPTokenizer } from '../src/io/tokenizer.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { loraLayers, withLoRABypassed } from '../src/nn/lora.js';
import { LpoTrainer, type LpoTrainConfig } from '../src/lpo/trainer.js';
import { parsePrompts, PromptSchedule, readPrompts } from '../src/lpo/prompts.js';
import { assertSameLatentSpace, LatentSpaceMismatchError, type RewardModel } from '../src/lpo/reward.js';
import type { LatentRewardModel } from '../src/lrm/model.js';
import { FileFormatError, LpoError } from '../src/errors.js';
import { noGrad } from '../src/autograd/tape.js';

let dir: string;
let lrm: LatentRewardModel;
const PROMPTS = ['a red cube', 'a blue sphere', 'a green cone'];
const FAST: Partial<LpoTrainConfig> = { sampleBatchSize: 2, trainBatchSize: 8, epochs: 1, seed: 3, lr: 1e-3 };

beforeAll(async () => {
  await setupGpu();
  dir = mkdtempSync(join(tmpdir(), 'lpo-trainer-'));
  // A sharp LRM (τ = ln 2000): a random tiny LRM at the default τ barely separates candidates of one x_t.
  lrm = tinyLrm(7, { logitScaleInit: Math.log(2000) });
});
afterAll(() => {
  lrm?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function loraValues(t: LpoTrainer): Promise<Float32Array[]> {
  return Promise.all(loraLayers(t.models.unet).flatMap(([, l]) => [l.loraA.toArray(), l.loraB.toArray()]));
}

describe('LpoTrainer', () => {
  it('one LPO iteration: pairs from the LRM, AdamW steps on the LoRA only, metrics; no VAE; the reference is the untouched base', async () => {
    const w = tinyWorld(1);
    // The pipeline's VAE is a trap: LPO must never decode.
    let decodes = 0;
    const vae = { config: { latentChannels: 4, scalingFactor: 0.18215, blockOutChannels: [8, 8] }, decode: () => { decodes++; throw new Error('decoded'); } };
    const pipe = new StableDiffusionPipeline({ tokenizer: CLIPTokenizer.fromFile(), textEncoder: { forward: () => { throw new Error('unused'); } }, unet: w.unet, vae, scheduler: sdScheduler() });
    const seen: number[][] = [];
    const reward: RewardModel = {
      score: (lat, t, text) => { seen.push([...lat.shape]); return lrm.score(lat, t, text as readonly string[]); },
    };
    const metricsFile = join(dir, 'metrics.jsonl');
    const base = tinyWorld(1); // same seed: the same base weights
    const trainer = new LpoTrainer({ unet: pipe.unet as typeof w.unet, encodePrompt: w.encodePrompt, scheduler: pipe.scheduler, reward }, PROMPTS, { ...FAST, metricsFile });
    const before = await loraValues(trainer);
    const m = await trainer.step();
    console.log(`iteration 0: ${m.items} pairs, valid rate ${m.validRate.toFixed(2)}, ${m.optimizerSteps} steps, loss ${m.loss}, ratio ${JSON.stringify(m.ratio)}, clamped ${m.clampedFraction}, ${m.seconds.total.toFixed(1)} s`);
    expect(decodes).toBe(0);
    expect(seen.every((s) => s.length === 4 && s[0] === 4 * 2 && s[1] === 4)).toBe(true);
    expect(m.items).toBeGreaterThan(0);
    expect(m.optimizerSteps).toBe(Math.ceil(m.items / 8));
    expect(trainer.optimizerSteps).toBe(m.optimizerSteps);
    // At the first step the policy is the reference (lora_B = 0): every ratio is 1 and the loss ln 2.
    expect(m.loss).not.toBeNull();
    if (m.optimizerSteps === 1) expect(Math.abs(m.loss! - Math.LN2)).toBeLessThan(1e-5);
    expect(Object.keys(m.validRateByT)).toHaveLength(20);
    expect(m.rewardMargin).toBeGreaterThan(0);
    const after = await loraValues(trainer);
    expect(after.some((a, i) => a.some((v, j) => v !== before[i][j]))).toBe(true);
    expect(trainer.models.unet.trainableParameters().length).toBe(after.length);
    // A second iteration frees what it makes: the pool holds the same bytes after it (no leak per iteration).
    const inUse = gpu().pool.stats().inUseBytes;
    await trainer.step();
    expect(gpu().pool.stats().inUseBytes).toBe(inUse);
    const lines = readFileSync(metricsFile, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines.map((l) => JSON.parse(l).iteration)).toEqual([0, 1]);
    // The reference pass (LoRA bypassed) is still exactly the base U-Net.
    const g = new Generator(9);
    const x = Tensor.randn([1, 4, 8, 8], g);
    const c = Tensor.randn([1, 77, 16], g);
    // Both under noGrad, as the trainer computes the reference (a recorded forward takes the unfused ops).
    const yRef = await withLoRABypassed(w.unet, () => noGrad(() => w.unet.forward(x, [501], c).sample)).toArray();
    const yBase = await noGrad(() => base.unet.forward(x, [501], c).sample).toArray();
    expect(Array.from(yRef)).toEqual(Array.from(yBase));
    trainer.dispose();
    w.dispose();
    base.dispose();
  });

  it('one GRPO iteration: every step gives a group of K, PPO-clipped updates with the KL term', async () => {
    const models = tinyModels(lrm, 2);
    const trainer = new LpoTrainer(models, PROMPTS, { ...FAST, algo: 'grpo', K: 3 });
    const m = await trainer.step();
    console.log(`GRPO iteration 0: ${m.items} groups, ${m.optimizerSteps} steps, loss ${m.loss}, ratio ${JSON.stringify(m.ratio)}, kl ${m.kl}`);
    expect(m.items).toBe(2 * 20);
    expect(m.optimizerSteps).toBe(5);
    expect(Number.isFinite(m.loss!)).toBe(true);
    expect(m.kl).toBeGreaterThanOrEqual(0);
    trainer.dispose();
    models.dispose();
  });

  it('resume: stop after iteration 2, resume from the checkpoint, and the final LoRA equals the uninterrupted run (≤ 1e-6)', async () => {
    const cfg: Partial<LpoTrainConfig> = { ...FAST, sampleBatchSize: 1, trainBatchSize: 4, seed: 11 };
    const full = tinyModels(lrm, 4);
    const a = new LpoTrainer(full, PROMPTS, cfg);
    await a.train();
    expect(a.iteration).toBe(3);
    const want = await loraValues(a);

    const outDir = join(dir, 'run');
    const first = tinyModels(lrm, 4);
    const b = new LpoTrainer(first, PROMPTS, { ...cfg, outDir, checkpointEvery: 2 });
    await b.train({ maxIterations: 2 });
    expect(existsSync(join(outDir, 'checkpoints', 'step-00000002', 'state.json'))).toBe(true);
    b.dispose();
    first.dispose();

    const second = tinyModels(lrm, 4);
    const c = new LpoTrainer(second, PROMPTS, { ...cfg, outDir });
    expect(await c.resume(join(outDir, 'checkpoints'))).toBe(join(outDir, 'checkpoints', 'step-00000002'));
    expect(c.iteration).toBe(2);
    await c.train();
    const got = await loraValues(c);
    let worst = 0;
    want.forEach((wv, i) => wv.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - got[i][j])); }));
    console.log(`resume: max |LoRA difference| ${worst} over ${want.reduce((s, v) => s + v.length, 0)} values; optimizer steps ${a.optimizerSteps} vs ${c.optimizerSteps}`);
    expect(worst).toBeLessThanOrEqual(1e-6);
    expect(c.optimizerSteps).toBe(a.optimizerSteps);
    expect(a.optimizerSteps).toBeGreaterThan(2); // the runs did train
    // A checkpoint made with other settings is refused.
    const third = tinyModels(lrm, 4);
    const d = new LpoTrainer(third, PROMPTS, { ...cfg, beta: 100 });
    await expect(d.resume(join(outDir, 'checkpoints'))).rejects.toThrow(/different settings \(beta\)/);
    for (const t of [a, c, d]) t.dispose();
    for (const m of [full, second, third]) m.dispose();
  });
});

describe('prompt files', () => {
  it("reads the authors' JSON, string arrays and text; walks seeded epochs without dropping the last batch", () => {
    expect(parsePrompts('[{"caption": "a cat", "trainset_idx": 3}, {"caption": " a dog "}]')).toEqual(['a cat', 'a dog']);
    expect(parsePrompts('["x", "y"]')).toEqual(['x', 'y']);
    expect(parsePrompts('one\n\n two \r\nthree\n')).toEqual(['one', 'two', 'three']);
    const s = new PromptSchedule(['a', 'b', 'c', 'd', 'e'], 2, 1);
    expect(s.batchesPerEpoch).toBe(3);
    const epoch0 = [0, 1, 2].flatMap((b) => s.batch({ epoch: 0, batch: b }));
    expect([...epoch0].sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(s.batch({ epoch: 0, batch: 2 })).toHaveLength(1);
    expect([0, 1, 2].flatMap((b) => s.batch({ epoch: 1, batch: b }))).not.toEqual(epoch0);
    expect(s.position(4)).toEqual({ epoch: 1, batch: 1 });
  });

  it('empty files, empty or huge prompts and captionless entries are FileFormatErrors naming the file', () => {
    const f = join(dir, 'p.txt');
    writeFileSync(f, '   \n');
    expect(() => readPrompts(f)).toThrow(/p\.txt.*empty/);
    expect(() => parsePrompts('["ok", ""]', 'x.json')).toThrow(/entry 1: empty prompt/);
    expect(() => parsePrompts(`a\n${'z'.repeat(5000)}\n`, 'x.txt')).toThrow(/line 2: prompt of 5000 characters/);
    expect(() => parsePrompts('[{"text": "a"}]', 'x.json')).toThrow(/without a "caption"/);
    expect(() => parsePrompts('[1, 2', 'x.json')).toThrow(FileFormatError);
    expect(() => readPrompts(join(dir, 'missing.txt'))).toThrow(FileFormatError);
  });
});

describe('heterogeneous LRM', () => {
  it('is accepted when the VAE (latent space) is the same and refused with the differing fields otherwise', () => {
    const vae = JSON.parse(readFileSync(join(GOLDEN, 'vae/config.json'), 'utf8'));
    expect(() => assertSameLatentSpace(vae, { ...vae, _name_or_path: 'elsewhere' })).not.toThrow();
    expect(() => assertSameLatentSpace(vae, { ...vae, latent_channels: 16, scaling_factor: 0.13025 })).toThrow(LatentSpaceMismatchError);
    expect(() => assertSameLatentSpace(vae, { ...vae, scaling_factor: 0.13025 })).toThrow(/scaling_factor: 0.18215 vs 0.13025/);
    expect(new LatentSpaceMismatchError('x')).toBeInstanceOf(LpoError);
  });
});
