// `LPO_BENCH_FULL=1 npx vitest bench --run bench/lpo-sd15.bench.ts` (opt-in on lavapipe: ~1 h; runs by default on
// a GPU adapter). One LPO iteration's phases at SD1.5 size: the policy U-Net with SD1.5's real config and seeded
// random weights plus rank-4 LoRA on to_q/to_k/to_v/to_out.0, an LRM on an SD1.5 truncated U-Net and a CLIP-L/14
// text encoder (random), 64×64 latents, K = 4, CFG 5.
//   sampling step: the guided U-Net forward of B prompts ([uncond; cond], batch 2B), the DDIM mean, K·B candidates,
//                  the LRM scoring all K·B candidates (text and null passes) — one step, × 20 for an iteration;
//   training step: P pairs: reference forward (LoRA bypassed), policy forward, backward, AdamW — timed per phase
//                  (the GPU is waited for between phases).
// B and P default to 5 and 10 (the authors' per-GPU batches) on GPUs and to 1 and 1 on lavapipe (LPO_BENCH_B,
// LPO_BENCH_P); LPO_BENCH_CKPT=1 turns gradient checkpointing on. Reports the pool's memory peaks and merges an
// `lpo_sd15` section into bench/results/<adapter>.json.
import { bench, describe } from 'vitest';
import { settings } from '../src/settings.js';
import { fullShapesOnSoftware, writeSection } from './common.js';
import { gpu, initGpu } from '../src/gpu/runtime.js';
import { noGrad } from '../src/autograd/tape.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { DDIMScheduler } from '../src/diffusion/ddim.js';
import { CLIPTokenizer } from '../src/io/tokenizer.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../src/nn/clip.js';
import { UNet2DConditionModel, SD15_UNET_CONFIG } from '../src/nn/unet.js';
import { addLoRA, loraParameters } from '../src/nn/lora.js';
import { AdamW } from '../src/optim/adamw.js';
import { LatentRewardModel, TextFeatures } from '../src/lrm/model.js';
import { cfgNoise } from '../src/lpo/cfg.js';
import { ddimMean } from '../src/lpo/loss.js';
import { candidatesFrom, type StepPair } from '../src/lpo/sampler.js';
import { lpoStep } from '../src/lpo/update.js';

const MB = 2 ** 20;
const LATENT = settings.bench.latent ?? 64;
const K = 4;
const SD_SCHEDULER = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', clip_sample: false, set_alpha_to_one: false, steps_offset: 1, timestep_spacing: 'leading' };
// The LRM's text encoder only encodes the prompts once per trajectory batch, which is not timed here: the contexts
// and text features are random tensors of the real shapes. A 1-layer stand-in keeps the model constructible (the
// real 49408×768 token table, 158 MB, is over lavapipe's 128 MiB storage-binding limit).
const CLIP_STANDIN = parseCLIPTextConfig({
  hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 1, num_attention_heads: 12, max_position_embeddings: 77,
  hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, vocab_size: 1024,
});

/** Wall seconds; lavapipe's threads run in this process, so its CPU seconds show how contended the machine was. */
let cpuSeconds = 0;
async function timed<T>(fn: () => T | Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const c = process.cpuUsage();
  const r = await fn();
  await gpu().sync();
  const d = process.cpuUsage(c);
  cpuSeconds = (d.user + d.system) / 1e6;
  return [r, (performance.now() - t) / 1000];
}

async function runSuite(): Promise<void> {
  const g = await initGpu();
  const s = g.summary;
  const B = settings.bench.b ?? (s.isSoftware ? 1 : 5);
  const P = settings.bench.p ?? (s.isSoftware ? 1 : 10);
  const adapter = `${s.vendor} / ${s.architecture} / ${s.description || s.device}`;
  console.log(`\nLPO SD1.5 bench on ${adapter}: latents ${LATENT}×${LATENT}, B = ${B} prompts, K = ${K}, P = ${P} pairs per step`);
  const gen = new Generator(1234);
  const [parts, initS] = await timed(() => {
    const unet = new UNet2DConditionModel(SD15_UNET_CONFIG, { gen });
    const lrm = new LatentRewardModel({
      unet: new UNet2DConditionModel(SD15_UNET_CONFIG, { gen, upBlocks: false }),
      textEncoder: new CLIPTextModel(CLIP_STANDIN, { gen }),
      tokenizer: CLIPTokenizer.fromFile(),
      seed: 5,
    });
    lrm.freeze();
    const names = addLoRA(unet, { rank: 4, gen });
    return { unet, lrm, names };
  });
  const { unet, lrm, names } = parts;
  if (settings.bench.checkpointing) unet.enableGradientCheckpointing(true);
  const loraParams = loraParameters(unet).reduce((a, p) => a + p.size, 0);
  const unetParams = unet.numParameters() - loraParams;
  const lrmParams = lrm.numParameters();
  const afterInit = gpu().pool.stats().inUseBytes;
  console.log(`init ${initS.toFixed(1)} s: policy U-Net ${unetParams.toLocaleString()} parameters (${(unetParams * 4 / 1e9).toFixed(2)} GB f32) + LoRA ${loraParams.toLocaleString()} in ${names.length} layers; LRM ${lrmParams.toLocaleString()}; pool in use ${(afterInit / MB).toFixed(0)} MiB`);

  const sched = DDIMScheduler.fromConfig(SD_SCHEDULER);
  sched.setTimesteps(20);
  const prompts = Array.from({ length: B }, (_, i) => `a photo of object number ${i}`);
  const cond = Tensor.randn([B, 77, 768], gen);
  const uncond = Tensor.randn([1, 77, 768], gen);
  // The LRM's text features of the K·B candidates' prompts (B distinct ones, plus the null prompt for VFE).
  const pd = lrm.config.projectionDim;
  const textFeatures = () => new TextFeatures(prompts, Int32Array.from({ length: K * B }, (_, i) => i % B),
    Tensor.randn([B, 768], gen), Tensor.randn([B, pd], gen), Tensor.randn([B + 1, 77, 768], gen), B);
  const t = 501;
  const phases: Record<string, number> = {};

  // One sampling step at latent side L: the guided U-Net, the DDIM mean, K·B candidates, the LRM on all of them.
  const samplingStep = async (L: number) => {
    const x = Tensor.randn([B, 4, L, L], gen);
    const [cands, tUnet] = await timed(() => noGrad(() => {
      const eps = cfgNoise(unet, x, t, cond, uncond, 5);
      const { mean, std } = ddimMean(sched, eps, t, x, 1);
      const c = candidatesFrom(mean, std, Tensor.randn([K, B, 4, L, L], gen));
      eps.dispose();
      mean.dispose();
      return c;
    }));
    if (L === LATENT) console.log(`  guided U-Net forward (batch ${2 * B}) + DDIM + ${K * B} candidates: ${tUnet.toFixed(2)} s wall, ${cpuSeconds.toFixed(0)} s CPU`);
    const text = textFeatures();
    const [scores, tLrm] = await timed(() => noGrad(() => lrm.score(cands, t, text)));
    if (L === LATENT) console.log(`  LRM scoring of ${K * B} candidates (batch ${2 * K * B} with VFE): ${tLrm.toFixed(2)} s wall, ${cpuSeconds.toFixed(0)} s CPU`);
    const vals = await scores.toArray();
    if (!vals.every(Number.isFinite)) throw new Error('non-finite LRM scores');
    for (const z of [scores, cands, x]) z.dispose();
    text.dispose();
    return { tUnet, tLrm };
  };
  // One training step on P pairs at latent side L.
  const opt = new AdamW(loraParameters(unet), { lr: 6e-5, weightDecay: 1e-4 });
  const trainingStep = async (L: number) => {
    const pairs: StepPair[] = Array.from({ length: P }, (_, i) => ({
      xt: Tensor.randn([1, 4, L, L], gen), t: [951, 501, 51, 1][i % 4], prompt: i % B,
      xw: Tensor.randn([1, 4, L, L], gen), xl: Tensor.randn([1, 4, L, L], gen), scoreW: 1, scoreL: 0,
    }));
    const [stats, seconds] = await timed(() => lpoStep({ policy: unet, scheduler: sched, optimizer: opt, cond, uncond, syncPhases: true }, pairs));
    for (const p of pairs) for (const z of [p.xt, p.xw, p.xl]) z.dispose();
    return { stats, seconds };
  };
  // Warm-up (every pipeline compiled once, not timed): at the full size on GPUs, at 8×8 on lavapipe (compiling is
  // most of a first small run there, and a second full-size run would take an hour).
  const warm = s.isSoftware ? 8 : LATENT;
  const tw = performance.now();
  await samplingStep(warm);
  await trainingStep(warm);
  console.log(`warm-up at ${warm}×${warm} (pipeline compilation): ${((performance.now() - tw) / 1000).toFixed(1)} s`);

  gpu().pool.resetPeaks();
  const st = await samplingStep(LATENT);
  phases.sampleUnetStep = st.tUnet;
  phases.sampleLrmStep = st.tLrm;
  const samplePeak = gpu().pool.stats().peakInUseBytes;
  console.log(`sampling step: guided U-Net forward (batch ${2 * B}) + DDIM + ${K * B} candidates ${st.tUnet.toFixed(2)} s; LRM scoring of ${K * B} candidates ${st.tLrm.toFixed(2)} s; ×20 steps → ${(20 * (st.tUnet + st.tLrm)).toFixed(1)} s per trajectory batch`);
  gpu().pool.resetPeaks();
  const { stats, seconds: tTrain } = await trainingStep(LATENT);
  const trainPeak = gpu().pool.stats().peakInUseBytes;
  Object.assign(phases, { referenceForward: stats.times.reference, policyForward: stats.times.policy, backward: stats.times.backward, optimizer: stats.times.optimizer, trainStep: tTrain });
  console.log(`training step (${P} pairs): reference forward ${stats.times.reference.toFixed(2)} s, policy forward ${stats.times.policy.toFixed(2)} s, backward ${stats.times.backward.toFixed(2)} s, AdamW ${stats.times.optimizer.toFixed(3)} s; loss ${stats.loss.toFixed(4)}`);
  // The authors' iteration: 5 prompts × 20 steps sampled; with a 50% valid rate, 50 pairs → 5 steps of 10.
  // Both phases scale about linearly in the batch, hence the B and P ratios.
  const perIteration = 20 * (st.tUnet + st.tLrm) * (5 / B) + 5 * tTrain * (10 / P);
  console.log(`pool peaks: sampling ${(samplePeak / MB).toFixed(0)} MiB, training ${(trainPeak / MB).toFixed(0)} MiB in use (weights ${(afterInit / MB).toFixed(0)} MiB)`);
  console.log(`an authors'-size iteration (5 prompts × 20 steps, 50 valid pairs → 5 steps of 10), extrapolated from these phases: ${perIteration.toFixed(0)} s`);
  console.log(`wrote ${writeSection(s, 'lpo_sd15', {
    date: new Date().toISOString(), adapter, software: s.isSoftware, latent: LATENT, B, K, P, checkpointing: settings.bench.checkpointing,
    parameters: { unet: unetParams, lora: loraParams, loraLayers: names.length, lrm: lrmParams }, initSeconds: initS, phases,
    pool: { weightsMiB: afterInit / MB, samplingPeakMiB: samplePeak / MB, trainingPeakMiB: trainPeak / MB, peakAllocatedMiB: gpu().pool.stats().peakAllocatedBytes / MB },
    extrapolatedIterationSeconds: perIteration,
  })}`);
  for (const z of [cond, uncond]) z.dispose();
  opt.dispose();
  unet.dispose();
  lrm.dispose();
}

describe('lpo sd15', () => {
  bench('one LPO iteration at SD1.5 size, by phase (report above)', async () => {
    const g = await initGpu();
    if (g.summary.isSoftware && !fullShapesOnSoftware) {
      console.log('lpo sd15: skipped on a software adapter (set LPO_BENCH_FULL=1; about an hour on lavapipe)');
      return;
    }
    await runSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
