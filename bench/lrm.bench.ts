// `npx vitest bench --run bench/lrm.bench.ts` (LPO_BENCH_FULL=1 for the SD1.5 shapes on the software adapter).
// The Latent Reward Model at SD1.5 size: the real SD1.5 U-Net config (truncated: no up blocks) and CLIP ViT-L's
// text config, seeded random weights, 64×64 latents. Times one scoring call of 4 candidates (one prompt, noGrad)
// and one training step (a global batch of 2 pairs, gradient checkpointing on: forward of 4 images × {text, null}
// = U-Net batch 8, pair loss, backward, clipping, AdamW), after a warm-up at 8×8 that compiles the pipelines, and
// reports the GPU pool's peaks (gpu().pool.stats()) for each. Without LPO_BENCH_FULL on lavapipe it runs a
// narrow stand-in of the same layout (labelled so). Merges an `lrm` section into bench/results/<adapter>.json.
import { bench, describe } from 'vitest';
import { fullShapesOnSoftware, writeSection } from './common.js';
import '../src/io/pretrained.js';
import { initGpu, gpu } from '../src/gpu/runtime.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { noGrad } from '../src/autograd/tape.js';
import { AdamW, clipGradNorm } from '../src/optim/adamw.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../src/nn/clip.js';
import { UNet2DConditionModel, SD15_UNET_CONFIG } from '../src/nn/unet.js';
import { CLIPTokenizer } from '../src/io/tokenizer.js';
import { memoryPairs } from '../src/io/pairs/memory.js';
import type { PairRow } from '../src/io/pairs/types.js';
import { LatentRewardModel } from '../src/lrm/model.js';
import { PairDraws } from '../src/lrm/batch.js';
import { lrmScheduler } from '../src/lrm/noise.js';
import { LRM_TIMESTEPS } from '../src/lrm/schedule.js';
import { brightDarkPairs } from '../src/lrm/synthetic.js';
import { accumulatePairGradients } from '../src/lrm/train.js';

const MB = 2 ** 20;

/** CLIP ViT-L/14's text tower (SD1.5's text_encoder/config.json). */
const CLIP_L = { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, max_position_embeddings: 77, hidden_act: 'quick_gelu', vocab_size: 49408 };

async function runSuite(): Promise<void> {
  const g = await initGpu();
  const s = g.summary;
  const full = !s.isSoftware || fullShapesOnSoftware;
  const unetCfg = full ? { ...SD15_UNET_CONFIG } : { ...SD15_UNET_CONFIG, block_out_channels: [32, 64, 128, 128], cross_attention_dim: 64, norm_num_groups: 8, sample_size: 16 };
  // Devices bind at most maxStorageBufferBindingSize bytes per buffer (128 MiB on lavapipe): CLIP-L's token table
  // (49408 × 768 f32 = 152 MB) is cut to the rows that fit there (ids past it embed as zero rows), and the U-Net
  // batch runs in chunks whose largest activation (GEGLU's [b, h·w, 8·C0]) fits.
  const limit = s.maxStorageBufferBindingSize;
  const vocab = Math.min(CLIP_L.vocab_size, Math.floor(limit / (CLIP_L.hidden_size * 4)));
  const clipCfg = parseCLIPTextConfig(full ? { ...CLIP_L, vocab_size: vocab } : { ...CLIP_L, hidden_size: 64, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 4 });
  const side = full ? 64 : 16;
  const c0 = (unetCfg.block_out_channels as number[])[0];
  const unetBatch = Math.max(1, Math.floor(limit / (side * side * 8 * c0 * 4)));
  const label = (full ? 'SD1.5 U-Net config (truncated) + CLIP ViT-L text, 64×64 latents' : 'stand-in (SD1.5 layout, widths 32/64/128/128, CLIP 64-wide × 2 layers, 16×16 latents; LPO_BENCH_FULL=1 for SD1.5)')
    + (full && vocab < CLIP_L.vocab_size ? `; CLIP vocabulary cut to ${vocab} rows (binding limit ${limit / MB} MiB)` : '')
    + `; U-Net batch in chunks of ${unetBatch}`;
  console.log(`\nlrm bench on ${s.description}${s.isSoftware ? ' (software)' : ''}: ${label}`);

  const t0 = performance.now();
  const model = new LatentRewardModel({
    unet: new UNet2DConditionModel(unetCfg, { gen: new Generator(1), upBlocks: false }),
    textEncoder: new CLIPTextModel(clipCfg, { gen: new Generator(2) }),
    tokenizer: CLIPTokenizer.fromFile(),
    seed: 3,
  });
  model.unet.enableGradientCheckpointing(true);
  model.unetBatch = unetBatch;
  await gpu().sync();
  const initS = (performance.now() - t0) / 1000;
  const weightsMiB = model.parameters().reduce((a, p) => a + p.bytes, 0) / MB;
  console.log(`init: ${model.numParameters().toLocaleString()} parameters (U-Net ${model.unet.numParameters().toLocaleString()}, text ${model.textEncoder.numParameters().toLocaleString()}), ${weightsMiB.toFixed(0)} MiB, ${initS.toFixed(1)} s`);

  const params = model.trainableParameters();
  const opt = new AdamW(params, { lr: 1e-5, weightDecay: 0.3 });
  const scheduler = lrmScheduler(model);
  const draws = new PairDraws(42);
  const phase = async (what: string, fn: () => Promise<void>) => {
    const base = gpu().pool.stats().inUseBytes;
    gpu().pool.resetPeaks();
    const t = performance.now();
    await fn();
    await gpu().sync();
    const seconds = (performance.now() - t) / 1000;
    const p = gpu().pool.stats();
    const r = { what, seconds, peakInUseMiB: p.peakInUseBytes / MB, aboveStartMiB: (p.peakInUseBytes - base) / MB, peakAllocatedMiB: p.peakAllocatedBytes / MB };
    console.log(`${what}: ${seconds.toFixed(2)} s; pool peak in use ${r.peakInUseMiB.toFixed(0)} MiB (+${r.aboveStartMiB.toFixed(0)} MiB over the start), allocated ${r.peakAllocatedMiB.toFixed(0)} MiB`);
    return r;
  };
  /** One optimizer step on 2 pairs of [4, n, n] latents: accumulate, clip to 1, AdamW. */
  const trainStep = (n: number) => async () => {
    const rows: PairRow[] = [];
    for await (const r of memoryPairs(brightDarkPairs(2, 5, { side: n }), { resolution: n * 8 }).rows()) rows.push(r);
    model.config.sampleSize = n; // the latent size the trainer expects of the rows
    const { loss } = await accumulatePairGradients(model, rows, { microBatch: 2, timesteps: LRM_TIMESTEPS, draws, scheduler });
    model.config.sampleSize = side;
    const norm = clipGradNorm(params, 1.0);
    await norm.item();
    norm.dispose();
    opt.step();
    opt.zeroGrad();
    if (!Number.isFinite(loss)) throw new Error(`non-finite loss ${loss}`);
  };
  /** One scoring call of 4 candidates [4, 4, n, n] for one prompt at t = 501 (noGrad). */
  const score = (n: number) => async () => {
    const x = Tensor.randn([4, 4, n, n], new Generator(9));
    const text = noGrad(() => model.encodeText(['a photo of an astronaut riding a horse on mars']));
    const sc = noGrad(() => model.score(x, 501, text));
    await sc.toArray();
    sc.dispose();
    text.dispose();
    x.dispose();
  };
  // Pipelines compile on first use: warm every kernel up at 8×8 latents, then time each phase once at full size
  // (on lavapipe one SD1.5 step takes hours; a second sample would add nothing but time).
  const warm = [await phase('warm-up: train step + scoring at 8×8 (pipeline compilation)', async () => { await trainStep(8)(); await score(8)(); })];
  const runs = [
    ...warm,
    await phase(`score 4 candidates (${side}×${side})`, score(side)),
    await phase(`train step (2 pairs, ${side}×${side}, checkpointing)`, trainStep(side)),
  ];
  const result = { date: new Date().toISOString(), adapter: s.description, software: s.isSoftware, config: label, parameters: model.numParameters(), weightsMiB, initSeconds: initS, runs };
  opt.dispose();
  model.dispose();
  console.log(`wrote ${writeSection(s, 'lrm', result)}`);
}

describe('lrm', () => {
  bench('LRM training step and scoring at SD1.5 size (report above)', async () => {
    await runSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
