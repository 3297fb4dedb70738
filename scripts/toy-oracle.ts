// `npm run toy:oracle [-- --iterations 7,21 --lpo '{"lr":1e-3}' --best-of 4 --reward judge|redness --oracle x0|rollout]`: the toy
// world's ceiling study. It replaces the LRM with an oracle and asks what LPO (or step-level best-of-K) could
// reach in the demo's budget if the reward model were perfect.
//
// The oracle scores each candidate x_{t-1} by decoding the U-Net's x̂0 prediction at the next timestep and
// judging it. It reads the hidden judge, which the demo's models never do (test/toy-boundary.test.ts), so it is
// a diagnostic and not a method. `--reward judge` scores with the hidden preference (0.5·graded alignment +
// 0.2·match + 0.3·aesthetic). `--reward redness` scores with the mean of R − (G + B)/2; it is a control that
// tells whether the trainer can learn a direction shared by every prompt.
//
// It evaluates the held-out prompts × seeds of the demo (DDIM η = 0, 10 steps, CFG 5) before training and after
// each number of iterations in --iterations.
import { parseArgs } from 'node:util';
import { initGpu } from '../src/gpu/runtime.js';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.js';
import type { UNet2DConditionModel } from '../src/nn/unet.js';
import { Tensor, tidy } from '../src/tensor/tensor.js';
import { noGrad } from '../src/autograd/tape.js';
import { scale, sub } from '../src/tensor/ops/elementwise.js';
import { cfgNoise } from '../src/lpo/cfg.js';
import type { RewardModel } from '../src/lpo/reward.js';
import { LpoTrainer } from '../src/lpo/trainer.js';
import { demoPlan, lpoPrompts } from '../src/toy/demo.js';
import { sampleBestOfN, sampleImages, type Sampled } from '../src/toy/sample.js';
import { judgeSamples, summariseSamples } from '../src/toy/evaluate.js';
import { judge, preferenceScore } from '../src/toy/judge/judge.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'assets/toy/base' },
    iterations: { type: 'string', default: '7' },
    lpo: { type: 'string', default: '{}' },
    'best-of': { type: 'string' },
    reward: { type: 'string', default: 'judge' },
    // What the oracle judges: 'x0', the U-Net's one-step x̂0 of each candidate, or 'rollout', the image the
    // candidate ends in under deterministic DDIM (η = 0) with the current model: the exact value of the state
    // for that sampler, at the cost of the remaining steps for every candidate.
    oracle: { type: 'string', default: 'x0' },
    // Oracle scores are in [0, 1]; LPO's pair threshold is on softmax([s_max, s_min]), so they are scaled to the
    // LRM's range of margins (a gap of 0.04 passes the demo's top threshold of 0.2 at scale 10).
    scale: { type: 'string', default: '10' },
  },
});
if (values.reward !== 'judge' && values.reward !== 'redness') throw new Error(`--reward must be judge or redness, got ${values.reward}`);
if (values.oracle !== 'x0' && values.oracle !== 'rollout') throw new Error(`--oracle must be x0 or rollout, got ${values.oracle}`);
await initGpu();
const plan = demoPlan({});
const gain = Number(values.scale);
const pipe = await StableDiffusionPipeline.fromPretrained(values.model!);
const unet = pipe.unet as UNet2DConditionModel;
const uncond = pipe.encodePrompt(['']);

/** Mean of R − (G + B)/2 of an RGB CHW image in [0, 1]. */
function redness(im: ArrayLike<number>, offset = 0, size = im.length): number {
  const q = size / 3;
  let r = 0;
  for (let k = 0; k < q; k++) r += im[offset + k] - 0.5 * (im[offset + q + k] + im[offset + 2 * q + k]);
  return r / q;
}

/** x̂0 of latents that sit at the step after t (the candidates x_{t-1}), decoded to RGB in [0, 1]. */
function predictedImages(lat: Tensor, t: number, prompts: readonly string[]): Tensor {
  const prev = pipe.scheduler.prevTimestep(t);
  return noGrad(() => tidy(() => {
    if (prev < 0) return pipe.decodeLatents(lat);
    const eps = cfgNoise(unet, lat, prev, pipe.encodePrompt(prompts), uncond, plan.guidanceScale);
    const a = pipe.scheduler.alphaProd(prev);
    return pipe.decodeLatents(scale(sub(lat, scale(eps, Math.sqrt(1 - a))), 1 / Math.sqrt(a)));
  }));
}

/** The images that latents at the step after t end in under DDIM η = 0 with the current model (the pipeline's own step). */
function rolloutImages(lat: Tensor, t: number, prompts: readonly string[]): Tensor {
  return noGrad(() => tidy(() => {
    const cond = pipe.encodePrompt(prompts);
    let x = lat;
    for (let s = pipe.scheduler.prevTimestep(t); s >= 0; s = pipe.scheduler.prevTimestep(s)) {
      x = pipe.scheduler.step(cfgNoise(unet, x, s, cond, uncond, plan.guidanceScale), s, x).prevSample;
    }
    return pipe.decodeLatents(x);
  }));
}

// The sampler awaits `toArray()` of the score tensor and then disposes it; the judge runs on the host, so the
// oracle hands back an object with those two methods whose scores come from a readback (a Tensor cannot be
// computed from host code synchronously).
const oracle: RewardModel = {
  score(lat, t, text) {
    if (!Array.isArray(text) || typeof t !== 'number') throw new Error('oracle: expects prompt strings and one timestep');
    const prompts = text as readonly string[];
    return {
      dispose() {},
      async toArray() {
        const img = values.oracle === 'rollout' ? rolloutImages(lat, t, prompts) : predictedImages(lat, t, prompts);
        const px = await img.toArray();
        img.dispose();
        const per = px.length / prompts.length;
        return prompts.map((p, i) => {
          if (values.reward === 'redness') return gain * redness(px, i * per, per);
          return gain * preferenceScore(judge(px.subarray(i * per, (i + 1) * per), p));
        });
      },
    } as unknown as Tensor;
  },
};

const requests = plan.evalSeeds.flatMap((seed) => plan.evalPrompts.map((prompt) => ({ prompt, seed })));
function report(tag: string, samples: Sampled[]): void {
  const s = summariseSamples(judgeSamples(samples));
  const red = samples.reduce((a, x) => a + redness(x.image) / samples.length, 0);
  const f = (m: { mean: number; spread: number }) => `${m.mean.toFixed(3)} ± ${m.spread.toFixed(3)}`;
  console.log(`${tag.padEnd(28)} alignment rate ${f(s.alignmentRate)}  graded ${f(s.alignmentScore)}  aesthetic ${f(s.aesthetic)}  redness ${red.toFixed(4)}`);
}
const evaluate = async () => sampleImages(pipe, requests, { steps: plan.sampleSteps, guidanceScale: plan.guidanceScale, batch: 48 });

report('base', await evaluate());
if (values['best-of']) {
  const K = Number(values['best-of']);
  report(`oracle best-of-${K}`, await sampleBestOfN(pipe, oracle, requests, { K, seed: 11, steps: plan.sampleSteps, guidanceScale: plan.guidanceScale }));
}
const trainer = new LpoTrainer(
  { unet, encodePrompt: (p) => pipe.encodePrompt(p), scheduler: pipe.scheduler, reward: oracle },
  lpoPrompts(0, 256), { ...plan.lpo, ...JSON.parse(values.lpo!), latentSize: [pipe.sampleSize, pipe.sampleSize] },
);
const t0 = performance.now();
let done = 0;
for (const n of values.iterations!.split(',').map(Number).filter((n) => n > 0)) {
  await trainer.train({
    maxIterations: n - done,
    onIteration: (m) => console.log(`  iteration ${m.iteration}: ${m.items} pairs, loss ${m.loss?.toFixed(3) ?? '-'}, clamped ${m.clampedFraction?.toFixed(2) ?? '-'}, `
      + `final reward ${m.finalScore.toFixed(3)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`),
  });
  done = n;
  report(`LPO, ${n} iterations (${trainer.optimizerSteps} steps)`, await evaluate());
}
trainer.dispose();
pipe.dispose();
