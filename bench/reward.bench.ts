// Step-level reward cost for K = 4 candidates (the paper's Table 6: LRM 6.2× cheaper than a pixel reward model),
// both paths in this process on the same U-Net weights, samples interleaved:
//   latent   the LRM scores the K noisy candidates x_{t−1} directly: text and null halves through the truncated
//            U-Net (2K items to the mid block), pooled features, cosine with the projected prompt.
//   pixel    what a pixel reward needs for the same candidates: x̂0 of each (the full U-Net at t−1 on both CFG
//            halves, 2K items, then the DDIM x̂0 formula), the VAE decode, CLIP-style preprocessing (2×2 average
//            pool and a centre crop to 224 at SD size, standing in for CLIP's bicubic resize; none at toy size)
//            and a CLIP vision tower (src/nn/clip_vision.ts), cosine with a text embedding.
// Text features are computed once outside the timing (a sampler encodes the prompts once per trajectory).
// Toy size always (src/toy/model.ts configs, CLIP_VISION_TOY_CONFIG); SD1.5 size (SD1.5 U-Net and VAE, CLIP
// ViT-L/14 text and vision towers, 64×64 latents → 512² images) with LPO_BENCH_FULL=1 or on a GPU; the latent
// side can be lowered with LPO_BENCH_LATENT. Random weights (cost, not quality). Batches are chunked to the
// device's storage-binding limit (128 MiB on lavapipe), and a VAE decode too wide for one binding (SD1.5 at
// 512² on lavapipe) runs in tiles (src/nn/vae_tiling.ts), whose extra decoder work the table reports.
import { bench, describe } from 'vitest';
import { fullShapesOnSoftware, interleaved, machineInfo, printTable, writeSection } from './common.js';
import { initGpu, gpu } from '../src/gpu/runtime.js';
import { noGrad } from '../src/autograd/tape.js';
import { Tensor, tidy } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { add, affine, mul } from '../src/tensor/ops/elementwise.js';
import { concat, slice } from '../src/tensor/ops/layout.js';
import { sum } from '../src/tensor/ops/reduce.js';
import { avgPool2d } from '../src/tensor/ops/pool.js';
import { cfgCombine } from '../src/tensor/ops/guidance.js';
import { UNet2DConditionModel, SD15_UNET_CONFIG, type UNet2DConditionConfigJson } from '../src/nn/unet.js';
import { AutoencoderKL, SD15_VAE_CONFIG, type AutoencoderKLConfigJson } from '../src/nn/vae.js';
import { decodeActivationBytes, decodeTiled, largestTile } from '../src/nn/vae_tiling.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../src/nn/clip.js';
import { CLIPVisionModelWithProjection, CLIP_VISION_TOY_CONFIG, CLIP_VIT_L14_CONFIG, type CLIPVisionConfig } from '../src/nn/clip_vision.js';
import { CLIPTokenizer } from '../src/io/tokenizer.js';
import { LatentRewardModel } from '../src/lrm/model.js';
import { DDIMScheduler } from '../src/diffusion/ddim.js';
import { TOY_SCHEDULER_CONFIG, TOY_TEXT_ENCODER_CONFIG, TOY_UNET_CONFIG, TOY_VAE_CONFIG } from '../src/toy/model.js';
import { settings } from '../src/settings.js';

const K = 4;
const MB = 2 ** 20;
const CLIP_L_TEXT = { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, max_position_embeddings: 77, hidden_act: 'quick_gelu', vocab_size: 49408 };
interface Size { name: string; unet: UNet2DConditionConfigJson; vae: AutoencoderKLConfigJson; text: Record<string, unknown>; vision: CLIPVisionConfig; latent: number }

async function measure(sz: Size): Promise<Record<string, unknown>> {
  const g = gpu();
  const limit = g.summary.maxStorageBufferBindingSize;
  const text = parseCLIPTextConfig({ ...sz.text, vocab_size: Math.min(49408, Math.floor(limit / ((sz.text.hidden_size as number) * 4))) });
  const t0 = performance.now();
  const unet = new UNet2DConditionModel(sz.unet, { gen: new Generator(1) });
  const lrm = new LatentRewardModel({
    unet: new UNet2DConditionModel(sz.unet, { gen: new Generator(1), upBlocks: false }), // the same weights, truncated
    textEncoder: new CLIPTextModel(text, { gen: new Generator(2) }), tokenizer: CLIPTokenizer.fromFile(), seed: 3,
  });
  const vae = new AutoencoderKL(sz.vae, { gen: new Generator(4) });
  const clip = new CLIPVisionModelWithProjection(sz.vision, { gen: new Generator(5) });
  for (const m of [unet, lrm, vae, clip]) m.freeze();
  await g.sync();
  const initS = (performance.now() - t0) / 1000;
  const side = sz.latent;
  const c0 = (sz.unet.block_out_channels as number[])[0];
  // Items per U-Net call so the widest activation (GEGLU's 8·c0 per token) stays within one binding.
  const chunk = Math.max(1, Math.floor(limit / (side * side * 8 * c0 * 4)));
  lrm.unetBatch = chunk;
  // A decode whose widest activation exceeds one binding (SD1.5 at 512²: 256 MiB) runs in tiles (diffusers'
  // enable_tiling) of the largest side that fits, with a 10% overlap; the overlap re-decodes some pixels, so the
  // pixel path pays `tileOverhead` × the decoder's untiled work, reported beside the ratio.
  const tiled = decodeActivationBytes(vae, side, side) > limit;
  const tileSide = tiled ? largestTile(vae, limit, side) : side;
  const tileStride = Math.max(1, Math.floor(tileSide * 0.9));
  const covered = Array.from({ length: Math.ceil(side / tileStride) }, (_, k) => Math.min(tileSide, side - k * tileStride)).reduce((x, y) => x + y, 0);
  const tileOverhead = tiled ? (covered / side) ** 2 : 1;
  const sched = DDIMScheduler.fromConfig(TOY_SCHEDULER_CONFIG);
  const gen = new Generator(6);
  const t = 501;
  const tPrev = t - 50;
  const cands = Tensor.randn([K, 4, side, side], gen);
  const prompt = 'a red circle left of a blue square';
  const feats = noGrad(() => lrm.encodeText(new Array<string>(K).fill(prompt)));
  const ctxDim = sz.unet.cross_attention_dim as number;
  const ctx = noGrad(() => concat([Tensor.randn([K, 77, ctxDim], gen), Tensor.randn([K, 77, ctxDim], gen)], 0)); // [uncond; cond]
  const textEmb = Tensor.randn([1, sz.vision.projection_dim], gen);
  const a = sched.alphasCumprod[tPrev];

  const latentPath = async () => {
    const s = noGrad(() => lrm.score(cands, t, feats));
    await s.toArray();
    s.dispose();
  };
  const pixelPath = async () => {
    const scores = noGrad(() => tidy(() => {
      // x̂0 of every candidate: ε̂ from the full U-Net on both CFG halves (chunked), then (x − √(1−ᾱ)ε̂)/√ᾱ.
      const xs = concat([cands, cands], 0);
      const parts: Tensor[] = [];
      for (let i = 0; i < 2 * K; i += chunk) {
        const n = Math.min(chunk, 2 * K - i);
        parts.push(unet.forward(slice(xs, 0, { start: i, end: i + n }), tPrev, slice(ctx, 0, { start: i, end: i + n })).sample);
      }
      const eps = cfgCombine(concat(parts, 0), 5);
      const x0 = add(affine(cands, { scale: 1 / Math.sqrt(a) }), affine(eps, { scale: -Math.sqrt(1 - a) / Math.sqrt(a) }));
      // Decode one image at a time (a 512² decode holds 128 channels at full resolution: one binding).
      const embeds: Tensor[] = [];
      for (let k = 0; k < K; k++) {
        const zk = affine(slice(x0, 0, { start: k, end: k + 1 }), { scale: 1 / (sz.vae.scaling_factor ?? 1) });
        const img = tiled ? decodeTiled(vae, zk, { tile: tileSide, overlap: 0.1 }) : vae.decode(zk);
        let px = affine(img, { scale: 0.5, shift: 0.5 });
        const S = sz.vision.image_size;
        if (px.shape[2] >= 2 * S) px = avgPool2d(px, 2);
        if (px.shape[2] > S) {
          const o = (px.shape[2] - S) >> 1;
          px = slice(slice(px, 2, { start: o, end: o + S }), 3, { start: o, end: o + S });
        }
        embeds.push(clip.forward(px).imageEmbeds);
      }
      const e = concat(embeds, 0);
      return sum(mul(e, textEmb), 1);
    }));
    await scores.toArray();
    scores.dispose();
  };
  // SD1.5 size on a software adapter: one timed run of each path and no warm-up (each run takes tens of minutes;
  // building the pipelines, the warm-up's job, costs seconds of that).
  const slow = g.isSoftware && sz.name !== 'toy';
  const ab = await interleaved([{ name: 'latent (LRM)', run: latentPath }, { name: 'pixel (x̂0 → VAE → CLIP)', run: pixelPath }], slow ? 1 : 5, slow ? 0 : 2);
  for (const x of [cands, ctx, textEmb]) x.dispose();
  feats.dispose();
  for (const m of [unet, lrm, vae, clip]) m.dispose();
  await g.trimPool();
  const [lat, pix] = ab.results;
  return {
    size: sz.name, latent: side, K, initSeconds: initS, unetChunk: chunk,
    latentMs: lat.medianMs, pixelMs: pix.medianMs, pixelOverLatent: ab.ratioToFirst[1],
    vaeTiles: tiled ? { side: tileSide, overlap: 0.1, overhead: tileOverhead } : null,
    parameters: { unet: unet.numParameters(), lrm: lrm.numParameters(), vae: vae.numParameters(), clipVision: clip.numParameters() },
  };
}

export async function runRewardSuite(): Promise<Record<string, unknown>> {
  const g = await initGpu();
  const sizes: Size[] = [{ name: 'toy', unet: TOY_UNET_CONFIG, vae: TOY_VAE_CONFIG, text: TOY_TEXT_ENCODER_CONFIG, vision: CLIP_VISION_TOY_CONFIG, latent: 8 }];
  const notes: string[] = [];
  if (!g.isSoftware || fullShapesOnSoftware) {
    sizes.push({ name: 'SD1.5', unet: SD15_UNET_CONFIG, vae: SD15_VAE_CONFIG, text: CLIP_L_TEXT, vision: CLIP_VIT_L14_CONFIG, latent: settings.bench.latent ?? 64 });
  } else notes.push('SD1.5 size skipped on the software adapter (LPO_BENCH_FULL=1 runs it: tens of minutes on 2 cores)');
  const rows: Record<string, unknown>[] = [];
  for (const sz of sizes) {
    const r = await measure(sz);
    rows.push(r);
    console.log(`${sz.name}: latent ${(r.latentMs as number).toFixed(0)} ms, pixel ${(r.pixelMs as number).toFixed(0)} ms → ${(r.pixelOverLatent as number).toFixed(2)}× (pool peak ${(g.pool.stats().peakAllocatedBytes / MB).toFixed(0)} MiB)`);
  }
  const tiles = (r: Record<string, unknown>) => {
    const t = r.vaeTiles as { side: number; overhead: number } | null;
    return t ? `tiles of ${t.side} (×${t.overhead.toFixed(2)} decoder work)` : 'whole';
  };
  printTable(['size', 'latent', 'K', 'LRM ms', 'pixel ms', 'pixel ÷ LRM (paired)', 'VAE decode'], rows.map((r) => [String(r.size), `${r.latent}×${r.latent}`, String(K), (r.latentMs as number).toFixed(0), (r.pixelMs as number).toFixed(0), `${(r.pixelOverLatent as number).toFixed(2)}×`, tiles(r)]));
  const section = { date: new Date().toISOString(), machine: machineInfo(g.summary), paper: 'Table 6: LRM 6.2× cheaper per step than a pixel reward (SD1.5)', rows, notes };
  console.log(`wrote ${writeSection(g.summary, 'reward', section)}`);
  return section;
}

describe('reward cost', () => {
  bench('LRM vs pixel reward per step, K = 4 (table above)', async () => {
    await runRewardSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
