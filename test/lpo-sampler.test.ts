// The step-level sampler's mechanics on a tiny U-Net with a recording reward: one reward call per step with all
// K·B candidate latents at the current t, pairs that clear the threshold, candidates drawn around the step's own
// μ, the timestep-range ablation, GRPO groups with the sampling policy's log-probabilities, and best-of-N.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { RecordingReward, sdScheduler, tinyWorld } from './lpo-tiny.js';
import { noGrad } from '../src/autograd/tape.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { slice } from '../src/tensor/ops/layout.js';
import { cfgNoise } from '../src/lpo/cfg.js';
import { candidateLogProbs, ddimMean } from '../src/lpo/loss.js';
import { disposeStepwise, sampleStepwise, type StepwiseConfig } from '../src/lpo/sampler.js';
import { SD15_THRESHOLD, scoreGapFor, threshold } from '../src/lpo/threshold.js';
import { generateBestOfN } from '../src/lpo/best_of_n.js';
import { ArgumentError } from '../src/errors.js';

let world: ReturnType<typeof tinyWorld>;
const PROMPTS = ['a red cube', 'a blue sphere'];
let cond: Tensor;
let uncond: Tensor;

beforeAll(async () => {
  await setupGpu();
  world = tinyWorld(5);
  cond = noGrad(() => world.encodePrompt(PROMPTS));
  uncond = noGrad(() => world.encodePrompt(['']));
});
afterAll(() => {
  cond?.dispose();
  uncond?.dispose();
  world?.dispose();
});

async function sample(reward: RecordingReward, cfg: StepwiseConfig, seed = 1) {
  const scheduler = sdScheduler();
  const r = await sampleStepwise({ unet: world.unet, scheduler, reward, prompts: PROMPTS, cond, uncond, latents: [4, 8, 8], gen: new Generator(seed) }, cfg);
  await reward.settle();
  return { r, scheduler };
}

describe('sampleStepwise (LPO pairs)', () => {
  it('scores all K·B candidate latents in one call per step at the current t; pairs clear the threshold', async () => {
    const reward = new RecordingReward();
    const { r, scheduler } = await sample(reward, { K: 4 });
    const ts = scheduler.timesteps;
    expect(ts).toEqual(Array.from({ length: 20 }, (_, i) => 951 - 50 * i));
    expect(reward.calls.map((c) => c.t)).toEqual(ts);
    for (const c of reward.calls) {
      expect(c.shape).toEqual([8, 4, 8, 8]); // latents, never pixels: nothing is decoded
      expect(c.prompts).toEqual([...PROMPTS, ...PROMPTS, ...PROMPTS, ...PROMPTS]);
    }
    expect(r.steps.map((s) => s.t)).toEqual(ts);
    expect(r.pairs.length).toBe(r.steps.reduce((a, s) => a + s.valid, 0));
    console.log(`pairs: ${r.pairs.length} of ${2 * 20} (per step: ${r.steps.map((s) => s.valid).join('')})`);
    expect(r.pairs.length).toBeGreaterThan(0);
    for (const p of r.pairs) {
      const scores = reward.calls[ts.indexOf(p.t)].scores!;
      const col = [0, 1, 2, 3].map((k) => scores[k * 2 + p.prompt]);
      expect(p.scoreW).toBe(Math.max(...col));
      expect(p.scoreL).toBe(Math.min(...col));
      expect(p.scoreW - p.scoreL).toBeGreaterThan(scoreGapFor(threshold(SD15_THRESHOLD, p.t)) - 1e-5);
    }
    // x_w and x_l were drawn around the μ of their own x_t: (x − μ)/σ_t looks like N(0, 1).
    for (const p of r.pairs.slice(0, 4)) {
      const { mean: mu, std } = noGrad(() => ddimMean(scheduler, cfgNoise(world.unet, p.xt, p.t, slice(cond, 0, { start: p.prompt, end: p.prompt + 1 }), uncond, 5), p.t, p.xt, 1));
      const m = await mu.toArray();
      for (const x of [p.xw, p.xl]) {
        const v = await x.toArray();
        const z = v.map((a, i) => (a - m[i]) / std[0]);
        const sd = Math.sqrt(z.reduce((a, b) => a + b * b, 0) / z.length);
        expect(sd).toBeGreaterThan(0.7);
        expect(sd).toBeLessThan(1.3);
      }
      mu.dispose();
    }
    expect(r.latents.shape).toEqual([2, 4, 8, 8]);
    disposeStepwise(r);
  });

  it('the timestep-range ablation collects only steps with t in [lo, hi]; the sampler checks its settings', async () => {
    const { r } = await sample(new RecordingReward(), { timestepRange: [401, 801] });
    expect(r.pairs.every((p) => p.t >= 401 && p.t <= 801)).toBe(true);
    expect(r.steps.filter((s) => s.collected).map((s) => s.t)).toEqual([801, 751, 701, 651, 601, 551, 501, 451, 401]);
    disposeStepwise(r);
    await expect(sample(new RecordingReward(), { K: 1 })).rejects.toThrow(ArgumentError);
    await expect(sample(new RecordingReward(), { eta: 0 })).rejects.toThrow(ArgumentError);
  });

  it('GRPO groups: the K candidates of every x_t with their rewards and the sampling policy\'s log-probabilities', async () => {
    const reward = new RecordingReward();
    const { r, scheduler } = await sample(reward, { collect: 'groups', K: 3 });
    expect(r.groups.length).toBe(2 * 20);
    expect(r.pairs.length).toBe(0);
    const g = r.groups[5];
    const scores = reward.calls[scheduler.timesteps.indexOf(g.t)].scores!;
    expect(g.rewards).toEqual([0, 1, 2].map((k) => scores[k * 2 + g.prompt]));
    const { mean: mu, std } = noGrad(() => ddimMean(scheduler, cfgNoise(world.unet, g.xt, g.t, slice(cond, 0, { start: g.prompt, end: g.prompt + 1 }), uncond, 5), g.t, g.xt, 1));
    const lp = await candidateLogProbs(g.candidates, mu, std, 3).toArray();
    g.logpOld.forEach((v, k) => expect(Math.abs(v - lp[k])).toBeLessThan(1e-4));
    disposeStepwise(r);
  });
});

describe('generateBestOfN', () => {
  it('continues from the LRM\'s best candidate at every step (the final latent is the last step\'s argmax)', async () => {
    const reward = new RecordingReward();
    const res = await generateBestOfN({ unet: world.unet, scheduler: sdScheduler(), reward, encodePrompt: world.encodePrompt }, { prompts: PROMPTS, K: 4, seed: 3 });
    await reward.settle();
    const last = reward.calls[reward.calls.length - 1].scores!;
    res.finalScores.forEach((s, b) => expect(s).toBe(Math.max(...[0, 1, 2, 3].map((k) => last[k * 2 + b]))));
    // It beats plain K = 1-style sampling on its own reward: compare with a random continuation.
    const plain = new RecordingReward();
    const { r } = await sample(plain, { collect: 'none', continueWith: 'random' }, 3);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(`best-of-4 final reward ${mean(res.finalScores).toFixed(3)} vs random continuation ${mean(r.finalScores).toFixed(3)}`);
    expect(mean(res.finalScores)).toBeGreaterThan(mean(r.finalScores));
    res.latents.dispose();
    disposeStepwise(r);
    await expect(generateBestOfN({ unet: world.unet, scheduler: sdScheduler(), reward, encodePrompt: world.encodePrompt }, { prompts: PROMPTS, K: 1 })).rejects.toThrow(ArgumentError);
  });
});
