// From preference pairs to the LRM's inputs (LPO-SPEC §2.2): clean latents z0 (pre-encoded, or the VAE posterior
// SAMPLED × scaling factor under no_grad), one timestep per pair, independent noise per image, x_t by add_noise.
// Latents are laid out [image_0 of every pair; image_1 of every pair] (the criterion's order).
//
// Every random draw is made per pair, in pair order, from its own generator (timesteps, noise, VAE sampling), so a
// global batch split into micro-batches draws exactly what the whole batch would: accumulation is equivalent.
import { ArgumentError, ShapeError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator, type GeneratorState } from '../tensor/random.js';
import { noGrad } from '../autograd/tape.js';
import { add, mul, scale } from '../tensor/ops/elementwise.js';
import type { AutoencoderKL } from '../nn/vae.js';
import type { DDIMScheduler } from '../diffusion/ddim.js';
import type { PairRow } from '../io/pairs/types.js';

/** The three independent random streams of LRM training, seeded once. */
export class PairDraws {
  private readonly t: Generator;
  private readonly noise: Generator;
  private readonly vae: Generator;

  constructor(seed: number) {
    // Distinct odd offsets keep the streams apart (splitmix-style seeding decorrelates nearby seeds).
    this.t = new Generator(seed);
    this.noise = new Generator((seed ^ 0x5bd1e995) >>> 0);
    this.vae = new Generator((seed ^ 0x27d4eb2f) >>> 0);
  }

  /** One timestep per pair, uniform over `candidates`. */
  timesteps(pairs: number, candidates: readonly number[]): number[] {
    return Array.from({ length: pairs }, () => candidates[Math.min(candidates.length - 1, Math.floor(this.t.uniform() * candidates.length))]);
  }

  /** Standard normal noise for 2·pairs images of `per` elements each, drawn pair by pair, laid out [image_0s; image_1s]. */
  private pairNoise(gen: Generator, pairs: number, per: number): Float32Array {
    const out = new Float32Array(2 * pairs * per);
    for (let i = 0; i < pairs; i++) {
      out.set(gen.normalArray(per), i * per);
      out.set(gen.normalArray(per), (pairs + i) * per);
    }
    return out;
  }

  /** ε of add_noise. */
  noiseFor(pairs: number, per: number): Float32Array {
    return this.pairNoise(this.noise, pairs, per);
  }

  /** ε of the VAE posterior sample. */
  vaeNoiseFor(pairs: number, per: number): Float32Array {
    return this.pairNoise(this.vae, pairs, per);
  }

  /** The three streams' states (a training checkpoint), and their restoration. */
  state(): PairDrawsState {
    return { t: this.t.getState(), noise: this.noise.getState(), vae: this.vae.getState() };
  }

  setState(s: PairDrawsState): void {
    this.t.setState(s.t);
    this.noise.setState(s.noise);
    this.vae.setState(s.vae);
  }
}

export interface PairDrawsState { t: GeneratorState; noise: GeneratorState; vae: GeneratorState }

export interface LatentSource {
  /** Encodes rows without pre-encoded latents (frozen, no grad). */
  vae?: AutoencoderKL;
  /** Latent [C, h, w] the model takes (C = the U-Net's in_channels, h = w = sample_size). */
  latentShape: readonly [number, number, number];
  /** × this after the VAE sample (0.18215 for SD1.5); pre-encoded latents already carry it. */
  scalingFactor: number;
}

function latentOf(row: PairRow, k: 0 | 1): Float32Array | null {
  const l = k === 0 ? row.latent0 : row.latent1;
  return l ? l.data : null;
}

/**
 * Clean latents z0 [2P, C, h, w] of the pairs, [image_0s; image_1s]: the rows' own latents where every row has them,
 * else the VAE posterior sample × scaling factor of their images (no grad).
 */
export function cleanLatents(rows: readonly PairRow[], src: LatentSource, draws: PairDraws): Tensor {
  const P = rows.length;
  if (!P) throw new ArgumentError('cleanLatents: no pairs');
  const [C, h, w] = src.latentShape;
  const per = C * h * w;
  if (rows.every((r) => r.latent0 && r.latent1)) {
    const data = new Float32Array(2 * P * per);
    rows.forEach((r, i) => {
      for (const k of [0, 1] as const) {
        const l = latentOf(r, k)!;
        if (l.length !== per) throw new ShapeError(`pair ${r.index}: latent_${k} has ${l.length} values, the model takes [${src.latentShape}] (${per})`);
        data.set(l, (k * P + i) * per);
      }
    });
    return Tensor.fromArray(data, [2 * P, C, h, w]);
  }
  const vae = src.vae;
  if (!vae) {
    const bad = rows.find((r) => !(r.latent0 && r.latent1));
    throw new ArgumentError(`pair ${bad?.index}: no pre-encoded latents and no VAE to encode its images (give the base model's VAE)`);
  }
  const f = vae.downsampleFactor;
  const H = h * f;
  const W = w * f;
  const img = 3 * H * W;
  const data = new Float32Array(2 * P * img);
  rows.forEach((r, i) => {
    for (const k of [0, 1] as const) {
      const im = k === 0 ? r.image0 : r.image1;
      if (!im) throw new ArgumentError(`pair ${r.index}: image_${k} was not decoded`);
      if (im.length !== img) throw new ShapeError(`pair ${r.index}: image_${k} has ${im.length} values, expected 3×${H}×${W} (the model's resolution)`);
      data.set(im, (k * P + i) * img);
    }
  });
  return noGrad(() => tidy(() => {
    const x = Tensor.fromArray(data, [2 * P, 3, H, W]);
    const dist = vae.encode(x);
    try {
      const eps = Tensor.fromArray(draws.vaeNoiseFor(P, per), dist.mean.shape);
      return scale(add(dist.mean, mul(dist.std, eps)), src.scalingFactor);
    } finally {
      dist.dispose();
    }
  }));
}

/** x_t = √ᾱ_t z0 + √(1−ᾱ_t) ε for each image, both images of pair i at ts[i]; ε drawn per pair. */
export function noisyLatents(z0: Tensor, ts: readonly number[], scheduler: DDIMScheduler, draws: PairDraws): Tensor {
  const P = z0.shape[0] / 2;
  if (ts.length !== P) throw new ShapeError(`noisyLatents: ${ts.length} timesteps for ${P} pairs`);
  const per = z0.size / z0.shape[0];
  return noGrad(() => tidy(() => {
    const eps = Tensor.fromArray(draws.noiseFor(P, per), z0.shape);
    return scheduler.addNoise(z0, eps, [...ts, ...ts]);
  }));
}

/** Each image's prompt, [image_0s; image_1s]. */
export function pairPrompts(rows: readonly PairRow[]): string[] {
  const c = rows.map((r) => r.caption);
  return [...c, ...c];
}
