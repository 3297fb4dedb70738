// One LPO iteration at toy size (src/toy/model.ts U-Net with rank-4 LoRA on the attention projections, an LRM on
// the toy U-Net's down path and text encoder), broken down by phase: sampling (the guided U-Net on both CFG halves,
// DDIM mean, K candidates) and scoring (the LRM on the K·B candidates) per step, then the LPO update's phases
// (reference forward, policy forward, backward, optimizer; lpoStep with syncPhases, a GPU sync between phases, as
// the SD1.5 bench bench/lpo-sd15.bench.ts does at full size). B = 8 prompts, K = 4, 20 steps, P = 16 pairs.
// Timestamp queries on lavapipe measure per pass, which splits the stream: phases are timed on the host with syncs.
import { bench, describe } from 'vitest';
import { machineInfo, printTable, writeSection } from './common.js';
import { gpu, initGpu } from '../src/gpu/runtime.js';
import { noGrad } from '../src/autograd/tape.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { DDIMScheduler } from '../src/diffusion/ddim.js';
import { CLIPTokenizer } from '../src/io/tokenizer.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../src/nn/clip.js';
import { UNet2DConditionModel } from '../src/nn/unet.js';
import { addLoRA, loraParameters } from '../src/nn/lora.js';
import { AdamW } from '../src/optim/adamw.js';
import { LatentRewardModel } from '../src/lrm/model.js';
import { cfgNoise } from '../src/lpo/cfg.js';
import { ddimMean } from '../src/lpo/loss.js';
import { candidatesFrom, type StepPair } from '../src/lpo/sampler.js';
import { lpoStep } from '../src/lpo/update.js';
import { TOY_SCHEDULER_CONFIG, TOY_TEXT_ENCODER_CONFIG, TOY_UNET_CONFIG } from '../src/toy/model.js';

const [B, K, STEPS, P, L] = [8, 4, 20, 16, 8];

async function timed<T>(fn: () => T | Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const r = await fn();
  await gpu().sync();
  return [r, (performance.now() - t) / 1000];
}

export async function runLpoToySuite(): Promise<void> {
  const g = await initGpu();
  const gen = new Generator(7);
  const unet = new UNet2DConditionModel(TOY_UNET_CONFIG, { gen });
  const lrm = new LatentRewardModel({
    unet: new UNet2DConditionModel(TOY_UNET_CONFIG, { gen, upBlocks: false }),
    textEncoder: new CLIPTextModel(parseCLIPTextConfig(TOY_TEXT_ENCODER_CONFIG), { gen }), tokenizer: CLIPTokenizer.fromFile(), seed: 5,
  });
  lrm.freeze();
  addLoRA(unet, { rank: 4, gen });
  const sched = DDIMScheduler.fromConfig(TOY_SCHEDULER_CONFIG);
  sched.setTimesteps(STEPS);
  const D = TOY_UNET_CONFIG.cross_attention_dim as number;
  const cond = Tensor.randn([B, 77, D], gen);
  const uncond = Tensor.randn([1, 77, D], gen);
  const text = noGrad(() => lrm.encodeText(Array.from({ length: K * B }, (_, i) => `prompt ${i % B}`)));
  const opt = new AdamW(loraParameters(unet), { lr: 1e-4, weightDecay: 1e-4 });

  const samplingStep = async (t: number) => {
    const x = Tensor.randn([B, 4, L, L], gen);
    const [cands, tSample] = await timed(() => noGrad(() => {
      const eps = cfgNoise(unet, x, t, cond, uncond, 5);
      const { mean, std } = ddimMean(sched, eps, t, x, 1);
      const c = candidatesFrom(mean, std, Tensor.randn([K, B, 4, L, L], gen));
      eps.dispose();
      mean.dispose();
      return c;
    }));
    const [scores, tScore] = await timed(async () => { const s = noGrad(() => lrm.score(cands, t, text)); await s.toArray(); return s; });
    [scores, cands, x].forEach((z) => z.dispose());
    return { tSample, tScore };
  };
  const trainingStep = async () => {
    const pairs: StepPair[] = Array.from({ length: P }, (_, i) => ({
      xt: Tensor.randn([1, 4, L, L], gen), t: [951, 501, 51, 1][i % 4], prompt: i % B,
      xw: Tensor.randn([1, 4, L, L], gen), xl: Tensor.randn([1, 4, L, L], gen), scoreW: 1, scoreL: 0,
    }));
    const [stats, seconds] = await timed(() => lpoStep({ policy: unet, scheduler: sched, optimizer: opt, cond, uncond, syncPhases: true }, pairs));
    for (const p of pairs) for (const z of [p.xt, p.xw, p.xl]) z.dispose();
    return { stats, seconds };
  };
  await samplingStep(501); // warm-up: pipelines
  await trainingStep();
  const phases = { sampling: 0, scoring: 0, referenceForward: 0, policyForward: 0, backward: 0, optimizer: 0 };
  for (const t of sched.timesteps) {
    const s = await samplingStep(t);
    phases.sampling += s.tSample;
    phases.scoring += s.tScore;
  }
  const tr = await trainingStep();
  Object.assign(phases, { referenceForward: tr.stats.times.reference, policyForward: tr.stats.times.policy, backward: tr.stats.times.backward, optimizer: tr.stats.times.optimizer });
  const total = Object.values(phases).reduce((a, b) => a + b, 0);
  printTable(['phase', 'seconds', 'share'], Object.entries(phases).map(([k, v]) => [k, v.toFixed(2), `${(100 * v / total).toFixed(1)}%`]));
  console.log(`one iteration (B = ${B} prompts × ${STEPS} steps, K = ${K}; one update on ${P} pairs): ${total.toFixed(1)} s`);
  console.log(`wrote ${writeSection(g.summary, 'lpo_toy', { date: new Date().toISOString(), machine: machineInfo(g.summary), B, K, steps: STEPS, pairs: P, phases, totalSeconds: total })}`);
  [cond, uncond].forEach((z) => z.dispose());
  text.dispose();
  opt.dispose();
  unet.dispose();
  lrm.dispose();
}

describe('lpo toy', () => {
  bench('one LPO iteration at toy size, by phase (table above)', async () => {
    await runLpoToySuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
