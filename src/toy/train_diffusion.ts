// Stage 2 of the toy pre-training: the text encoder and the U-Net together, with SD's ε-prediction loss on VAE
// latents (x_t = √ᾱ_t z0 + √(1−ᾱ_t) ε, t uniform in [0, 1000), scaled_linear betas) and caption dropout to ""
// so that classifier-free guidance works. Two things make the few thousand steps a 2-core machine can afford
// go further: min-SNR-γ loss weights (Hang et al. 2023), and an exponential moving average of the weights,
// which is what gets saved. Each batch holds a few prompts with several images each, so the text encoder runs
// once per distinct prompt (its rows are gathered per image, and gradients add up through the gather).
import { ArgumentError } from '../errors.js';
import { backward, noGrad, requireGrad } from '../autograd/tape.js';
import { gpu } from '../gpu/runtime.js';
import { Tensor, keep, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { add, mul, scale, square, sub } from '../tensor/ops/elementwise.js';
import { mean, meanAll } from '../tensor/ops/reduce.js';
import { reshape } from '../tensor/ops/layout.js';
import { embedding } from '../tensor/ops/embedding.js';
import { AdamW, clipGradNorm } from '../optim/adamw.js';
import type { DDIMScheduler } from '../diffusion/ddim.js';
import type { CLIPTokenizer } from '../io/tokenizer.js';
import type { CLIPTextModel } from '../nn/clip.js';
import type { Module } from '../nn/module.js';
import type { UNet2DConditionModel } from '../nn/unet.js';
import { randInt } from './scenes.js';
import { warmupCosine } from './data.js';

/** Pre-encoded training latents (already × the VAE scaling factor) and their captions. */
export interface LatentDataset {
  captions: string[];
  /** [N, C, h, w] posterior means. */
  means: Float32Array;
  /** [N, C, h, w] posterior standard deviations. */
  stds: Float32Array;
  /** [C, h, w] of one latent. */
  latentShape: [number, number, number];
}

export interface DiffusionTrainOptions {
  steps: number;
  /** Images per step. */
  batch: number;
  /** Distinct prompts per step (batch / promptsPerBatch images each). */
  promptsPerBatch: number;
  lr: number;
  seed: number;
  warmup?: number;
  /** Probability that an image's caption is replaced by "" (default 0.1). */
  captionDropout?: number;
  /** γ of the min-SNR weights (default 5). */
  snrGamma?: number;
  /** EMA decay (default 0.999, warmed up as min(decay, (1 + step)/(10 + step))). */
  emaDecay?: number;
  onLog?: (info: { step: number; loss: number; lr: number }) => void;
  logEvery?: number;
  /** Called every `snapshotEvery` steps with the EMA weights by state-dict name (frozen ones: the live tensors). */
  onSnapshot?: (step: number, weights: { textEncoder: Map<string, Tensor>; unet: Map<string, Tensor> }) => Promise<void>;
  snapshotEvery?: number;
}

const EMA_EVERY = 4;

/** An exponential moving average of a set of parameters, kept on the GPU. */
export class Ema {
  readonly shadow: Tensor[];

  constructor(readonly params: Tensor[]) {
    this.shadow = params.map((p) => keep(noGrad(() => scale(p, 1))));
  }

  update(decay: number): void {
    // tidy frees the two scaled terms as well as the sum: leaking them (486 buffers per update for the toy model)
    // made every later step slower, as the host tracks each live buffer.
    noGrad(() => tidy(() => {
      this.params.forEach((p, i) => {
        const s = this.shadow[i];
        const next = add(scale(s, decay), scale(p, 1 - decay));
        gpu().copy(next.buffer, 0, s.buffer, 0, s.bytes);
      });
    }));
  }

  /** Copies the averages into the live parameters. */
  copyToParams(): void {
    this.params.forEach((p, i) => gpu().copy(this.shadow[i].buffer, 0, p.buffer, 0, p.bytes));
  }

  dispose(): void {
    for (const s of this.shadow) s.dispose();
  }
}

/** Groups dataset indices by caption. */
function byCaption(captions: readonly string[]): Map<string, number[]> {
  const m = new Map<string, number[]>();
  captions.forEach((c, i) => {
    const list = m.get(c);
    if (list) list.push(i);
    else m.set(c, [i]);
  });
  return m;
}

/**
 * Trains `textEncoder` and `unet` in place; at the end their parameters hold the EMA weights.
 * Returns the logged loss curve.
 */
export async function trainDiffusion(
  models: { textEncoder: CLIPTextModel; unet: UNet2DConditionModel; tokenizer: CLIPTokenizer; scheduler: DDIMScheduler },
  data: LatentDataset,
  o: DiffusionTrainOptions,
): Promise<{ step: number; loss: number }[]> {
  const { textEncoder, unet, tokenizer, scheduler } = models;
  const per = o.batch / o.promptsPerBatch;
  if (!Number.isInteger(per) || per < 1) throw new ArgumentError(`trainDiffusion: batch ${o.batch} is not a multiple of promptsPerBatch ${o.promptsPerBatch}`);
  const gen = new Generator(o.seed);
  const groups = byCaption(data.captions);
  const N = data.captions.length;
  const [C, h, w] = data.latentShape;
  const L = C * h * w;
  const T = scheduler.config.numTrainTimesteps;
  const gamma = o.snrGamma ?? 5;
  const dropout = o.captionDropout ?? 0.1;
  // The token table (49408 × width) stays at its random init: only ~20 of its rows are ever used, and a dense
  // gradient, AdamW state and EMA for all of it would cost more than the U-Net's whole backward pass.
  const trainables = (m: Module) => m.namedParameters().filter(([k, p]) => p.requiresGrad && !k.endsWith('token_embedding.weight')).map(([, p]) => p);
  for (const [k, p] of textEncoder.namedParameters()) if (k.endsWith('token_embedding.weight')) requireGrad(p, false);
  const params = [...trainables(textEncoder), ...trainables(unet)];
  const opt = new AdamW(params, { lr: o.lr, weightDecay: 0.01 });
  const ema = new Ema(params);
  const averaged = (m: Module) => new Map(m.namedParameters().map(([k, p]) => {
    const i = params.indexOf(p);
    return [k, i >= 0 ? ema.shadow[i] : p] as [string, Tensor];
  }));
  const emptyIds = tokenizer.encode('');
  const curve: { step: number; loss: number }[] = [];
  const logEvery = o.logEvery ?? 50;
  let pending: Tensor[] = [];

  try {
    for (let step = 0; step < o.steps; step++) {
      opt.lr = warmupCosine(step, o.steps, o.lr, o.warmup ?? 200);
      // Batch: promptsPerBatch anchor examples, each with per − 1 more images of the same caption.
      const prompts: string[] = [];
      const rows: number[] = [];
      const z0 = new Float32Array(o.batch * L);
      const ts: number[] = [];
      const weights: number[] = [];
      for (let p = 0; p < o.promptsPerBatch; p++) {
        const anchor = randInt(gen, N);
        const cap = data.captions[anchor];
        const same = groups.get(cap)!;
        prompts.push(cap);
        for (let k = 0; k < per; k++) {
          const idx = k === 0 ? anchor : same[randInt(gen, same.length)];
          const b = p * per + k;
          for (let j = 0; j < L; j++) z0[b * L + j] = data.means[idx * L + j] + data.stds[idx * L + j] * gen.normal();
          rows.push(gen.uniform() < dropout ? o.promptsPerBatch : p); // the last text row is ""
          const t = randInt(gen, T);
          ts.push(t);
          const a = scheduler.alphasCumprod[t];
          const snr = a / (1 - a);
          weights.push(Math.min(snr, gamma) / snr);
        }
      }
      const noise = Tensor.randn([o.batch, C, h, w], gen);
      const x0 = Tensor.fromArray(z0, [o.batch, C, h, w]);
      const loss = tidy(() => {
        const ids = [...prompts.map((s) => tokenizer.encode(s)), emptyIds];
        const text = textEncoder.forward(ids, { outputHiddenStates: false });
        text.poolerOutput.dispose();
        const last = text.lastHiddenState;
        const [, len, dim] = last.shape;
        const ctx = reshape(embedding(Tensor.fromArray(Int32Array.from(rows), [o.batch], 'i32'), reshape(last, [ids.length, len * dim])), [o.batch, len, dim]);
        const xt = scheduler.addNoise(x0, noise, ts);
        const pred = unet.forward(xt, ts, ctx).sample;
        const perSample = mean(reshape(square(sub(pred, noise)), [o.batch, L]), 1);
        return meanAll(mul(perSample, Tensor.fromArray(weights, [o.batch])));
      });
      backward(loss);
      clipGradNorm(params, 1).dispose();
      opt.step();
      for (const p of params) {
        p.grad?.dispose();
        p.grad = null;
      }
      // The average moves every EMA_EVERY steps (by decay^EMA_EVERY): a quarter of the launches, the same horizon.
      if ((step + 1) % EMA_EVERY === 0) ema.update(Math.min(o.emaDecay ?? 0.999, (1 + step) / (10 + step)) ** EMA_EVERY);
      noise.dispose();
      x0.dispose();
      pending.push(loss);
      // Wait for the GPU once per step: Dawn recycles bind groups only when the event loop runs, and lavapipe maps
      // memory for every descriptor set, so a few dozen steps without an await exhaust the kernel's
      // vm.max_map_count (65530) and the process segfaults inside vkCreateDescriptorPool.
      await gpu().sync();
      if ((step + 1) % logEvery === 0 || step === o.steps - 1) {
        let s = 0;
        for (const l of pending) {
          s += await l.item();
          l.dispose();
        }
        const row = { step: step + 1, loss: s / pending.length };
        pending = [];
        curve.push(row);
        o.onLog?.({ ...row, lr: opt.lr });
      }
      if (o.onSnapshot && o.snapshotEvery && (step + 1) % o.snapshotEvery === 0 && step < o.steps - 1) {
        await o.onSnapshot(step + 1, { textEncoder: averaged(textEncoder), unet: averaged(unet) });
      }
    }
    ema.copyToParams();
    await gpu().sync();
  } finally {
    for (const l of pending) l.dispose();
    ema.dispose();
  }
  return curve;
}
