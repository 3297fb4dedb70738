// Stage 1 of the toy pre-training: the AutoencoderKL on freshly rendered scenes. Loss = MSE(decode(z), x) +
// β·KL(q(z|x) ‖ N(0, I)) with z drawn from the posterior (the reparameterisation keeps the decoder robust to
// latent noise, which the diffusion model then relies on). Afterwards the scaling factor is set as SD's was:
// 1 / std of the latents over a sample of training images.
import { backward, noGrad } from '../autograd/tape.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { add, affine, exp, mul, scale, square, sub } from '../tensor/ops/elementwise.js';
import { meanAll } from '../tensor/ops/reduce.js';
import { AdamW, clipGradNorm } from '../optim/adamw.js';
import type { AutoencoderKL } from '../nn/vae.js';
import type { Conv2d } from '../nn/layers.js';
import { renderBatch, sampleExample, warmupCosine } from './data.js';
import { IMAGE_SIZE, pick, type Scene } from './scenes.js';
import type { LatentDataset } from './train_diffusion.js';

export interface VaeTrainOptions {
  steps: number;
  batch: number;
  lr: number;
  /** β of the KL term (per latent element, against the per-pixel MSE). */
  klWeight: number;
  /** Weight of object pixels (and their 1-pixel rim) against background pixels in the MSE (default 10). */
  objectWeight?: number;
  /**
   * The first `cropFraction` of the steps (default 0.8) train on `cropBatch` (default 4 × batch) windows of
   * `cropSize` (default 16) pixels around objects: a quarter of the cost per image for the same local detail
   * (the VAE is convolutional); the rest on whole images, so its normalisations settle at full size.
   */
  cropFraction?: number;
  cropBatch?: number;
  cropSize?: number;
  seed: number;
  warmup?: number;
  /** Called every `logEvery` steps with the mean losses since the last call. */
  onLog?: (info: { step: number; mse: number; kl: number; lr: number }) => void;
  logEvery?: number;
}

/**
 * Per-pixel loss weights [B, 1, S, S]: `objectWeight` on pixels that differ from the background and on their
 * 1-pixel rim, 1 elsewhere, so the few object pixels are not drowned by the background; `norm` turns the mean
 * of weight × error into the weighted mean.
 */
export function pixelWeights(images: Float32Array, backgrounds: readonly number[], objectWeight: number, S = IMAGE_SIZE): { weights: Float32Array; norm: number } {
  const n = S * S;
  const weights = new Float32Array(backgrounds.length * n).fill(1);
  let sum = 0;
  backgrounds.forEach((bg, b) => {
    const bgModel = bg * 2 - 1; // images are in [-1, 1]
    const obj = new Uint8Array(n);
    for (let p = 0; p < n; p++) {
      for (let c = 0; c < 3; c++) if (Math.abs(images[(b * 3 + c) * n + p] - bgModel) > 0.04) obj[p] = 1;
    }
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        let near = 0;
        for (let dy = -1; dy <= 1 && !near; dy++) for (let dx = -1; dx <= 1 && !near; dx++) {
          const yy = y + dy, xx = x + dx;
          if (yy >= 0 && xx >= 0 && yy < S && xx < S && obj[yy * S + xx]) near = 1;
        }
        if (near) weights[b * n + y * S + x] = objectWeight;
        sum += weights[b * n + y * S + x];
      }
    }
  });
  return { weights, norm: (backgrounds.length * n) / sum };
}

/**
 * side × side windows of [B, 3, 32, 32] images, each around one of its scene's objects, at offsets that are
 * multiples of 4 (so a window's latent grid lines up with the full image's).
 */
export function cropNearObjects(images: Float32Array, scenes: readonly Scene[], side: number, gen: Generator): Float32Array {
  const S = IMAGE_SIZE;
  const out = new Float32Array(scenes.length * 3 * side * side);
  scenes.forEach((sc, b) => {
    const o = sc.objects.length ? pick(gen, sc.objects) : { cx: S / 2, cy: S / 2 };
    const at = (c: number) => Math.min(S - side, Math.max(0, 4 * Math.round((c - side / 2 + (gen.uniform() - 0.5) * side * 0.5) / 4)));
    const ox = at(o.cx), oy = at(o.cy);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < side; y++) {
        const src = ((b * 3 + c) * S + oy + y) * S + ox;
        out.set(images.subarray(src, src + side), ((b * 3 + c) * side + y) * side);
      }
    }
  });
  return out;
}

/** Initial log-variance of the posterior (see trainVae). */
export const INITIAL_LOGVAR = -6;

/**
 * Trains the VAE in place; returns the logged (step, mse, kl) curve. The posterior's log-variance starts at
 * INITIAL_LOGVAR (quant_conv's bias for the logvar half) rather than 0: with σ ≈ 1 against near-zero means the
 * decoder would first see nothing but noise, and the tiny KL weight takes hundreds of steps to shrink it.
 */
export async function trainVae(vae: AutoencoderKL, o: VaeTrainOptions): Promise<{ step: number; mse: number; kl: number }[]> {
  const qc = vae.child<Conv2d>('quant_conv');
  if (qc.bias) {
    const b = await qc.bias.toArray();
    b.fill(INITIAL_LOGVAR, b.length / 2);
    qc.bias.write(b);
  }
  const dataGen = new Generator(o.seed);
  const noiseGen = new Generator(o.seed + 1);
  const params = vae.trainableParameters();
  const opt = new AdamW(params, { lr: o.lr, weightDecay: 0 });
  const logEvery = o.logEvery ?? 25;
  const curve: { step: number; mse: number; kl: number }[] = [];
  let pending: { mse: Tensor; kl: Tensor }[] = [];
  for (let step = 0; step < o.steps; step++) {
    opt.lr = warmupCosine(step, o.steps, o.lr, o.warmup ?? 100);
    const onCrops = step < Math.round(o.steps * (o.cropFraction ?? 0.8));
    const n = onCrops ? o.cropBatch ?? 4 * o.batch : o.batch;
    const side = onCrops ? o.cropSize ?? 16 : IMAGE_SIZE;
    const scenes = Array.from({ length: n }, () => sampleExample(dataGen, { split: 'all' }).scene);
    const host = onCrops ? cropNearObjects(renderBatch(scenes), scenes, side, dataGen) : renderBatch(scenes);
    const x = Tensor.fromArray(host, [n, 3, side, side]);
    const { weights, norm } = pixelWeights(host, scenes.map((sc) => sc.background), o.objectWeight ?? 10, side);
    const { loss, mse, kl } = tidy(() => {
      const post = vae.encode(x);
      const z = post.sample(noiseGen);
      const recon = vae.decode(z);
      const se = square(sub(recon, x));
      const mse = meanAll(se);
      const weighted = scale(meanAll(mul(se, Tensor.fromArray(weights, [n, 1, side, side]))), norm);
      // KL(N(μ, σ²) ‖ N(0, 1)) per element = ½(μ² + σ² − 1 − log σ²)
      const kl = scale(meanAll(sub(add(square(post.mean), exp(post.logvar)), affine(post.logvar, { shift: 1 }))), 0.5);
      post.dispose();
      return { loss: add(weighted, scale(kl, o.klWeight)), mse, kl };
    });
    backward(loss);
    clipGradNorm(params, 1).dispose();
    opt.step();
    vae.zeroGrad();
    loss.dispose();
    x.dispose();
    pending.push({ mse, kl });
    if ((step + 1) % logEvery === 0 || step === o.steps - 1) {
      let m = 0, k = 0;
      for (const p of pending) {
        m += await p.mse.item();
        k += await p.kl.item();
        p.mse.dispose();
        p.kl.dispose();
      }
      const row = { step: step + 1, mse: m / pending.length, kl: k / pending.length };
      pending = [];
      curve.push(row);
      o.onLog?.({ ...row, lr: opt.lr });
    }
  }
  return curve;
}

/** Posterior means and standard deviations of a batch of images in [-1, 1] ([B, 3, 32, 32] packed), on the host. */
export async function encodePosterior(vae: AutoencoderKL, images: Float32Array, count: number): Promise<{ mean: Float32Array; std: Float32Array }> {
  const [m, sd] = noGrad(() => {
    const x = Tensor.fromArray(images, [count, 3, IMAGE_SIZE, IMAGE_SIZE]);
    const post = vae.encode(x);
    x.dispose();
    const r = [post.mean.retain(), post.std.retain()];
    post.dispose();
    return r;
  });
  try {
    return { mean: await m.toArray(), std: await sd.toArray() };
  } finally {
    m.dispose();
    sd.dispose();
  }
}

/** 1 / std of the latent means of `samples` fresh training images (SD's scaling-factor recipe). */
export async function latentScalingFactor(vae: AutoencoderKL, samples: number, seed: number, batch = 64): Promise<number> {
  const gen = new Generator(seed);
  let s = 0, s2 = 0, n = 0;
  for (let done = 0; done < samples; done += batch) {
    const b = Math.min(batch, samples - done);
    const scenes = Array.from({ length: b }, () => sampleExample(gen, { split: 'all' }).scene);
    const { mean } = await encodePosterior(vae, renderBatch(scenes), b);
    for (const v of mean) { s += v; s2 += v * v; n++; }
  }
  const mu = s / n;
  return 1 / Math.sqrt(s2 / n - mu * mu);
}

/**
 * `count` captioned training examples (captions from the whole template space), encoded once: posterior means
 * and standard deviations, both × the scaling factor (the diffusion trainer samples z = mean + std·ε).
 */
export async function encodeDataset(
  vae: AutoencoderKL, count: number, seed: number, opts: { batch?: number; onProgress?: (done: number) => void } = {},
): Promise<LatentDataset> {
  const gen = new Generator(seed);
  const batch = opts.batch ?? 128;
  const sf = vae.config.scalingFactor;
  const f = 2 ** (vae.config.blockOutChannels.length - 1);
  const latentShape: [number, number, number] = [vae.config.latentChannels, IMAGE_SIZE / f, IMAGE_SIZE / f];
  const L = latentShape[0] * latentShape[1] * latentShape[2];
  const captions: string[] = [];
  const means = new Float32Array(count * L);
  const stds = new Float32Array(count * L);
  for (let done = 0; done < count; done += batch) {
    const b = Math.min(batch, count - done);
    const ex = Array.from({ length: b }, () => sampleExample(gen, { split: 'all' }));
    const { mean, std } = await encodePosterior(vae, renderBatch(ex.map((e) => e.scene)), b);
    for (let i = 0; i < mean.length; i++) {
      means[done * L + i] = mean[i] * sf;
      stds[done * L + i] = std[i] * sf;
    }
    captions.push(...ex.map((e) => e.caption));
    opts.onProgress?.(done + b);
  }
  return { captions, means, stds, latentShape };
}
