// LRM-guided step-level best-of-N (the paper's future work; no training): at every DDIM η > 0 step draw K
// candidates from the same x_t and continue from the one the latent reward model scores highest at that
// step's t. It is the LPO sampler with `continueWith: 'best'` and nothing collected; decoding the final latents
// (once, after the loop) is the caller's business.
import { ArgumentError } from '../errors.js';
import { noGrad } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import type { DDIMScheduler } from '../diffusion/ddim.js';
import type { UNetLike } from '../diffusion/pipeline.js';
import type { RewardModel } from './reward.js';
import { sampleStepwise, type StepStats } from './sampler.js';

export interface BestOfNModels {
  unet: UNetLike & { readonly config: { inChannels: number; sampleSize?: number } };
  scheduler: DDIMScheduler;
  reward: RewardModel;
  encodePrompt(prompts: readonly string[]): Tensor;
}

export interface BestOfNOptions {
  prompts: readonly string[];
  /** Candidates per step (K ≥ 2; K = 1 would be plain sampling). */
  K: number;
  seed?: number;
  numInferenceSteps?: number;
  /** Default 5.0 (LPO's sampling guidance). */
  guidanceScale?: number;
  /** DDIM η (> 0; default 1). */
  eta?: number;
  /** Initial latents [B, C, h, w]; else drawn from the seed at [C, latentSize]. */
  latents?: Tensor;
  latentSize?: readonly [number, number];
}

export interface BestOfNResult {
  /** Final latents x_0 [B, C, h, w] (the caller disposes them). */
  latents: Tensor;
  /** The LRM's score of each final latent at the last step's t. */
  finalScores: number[];
  steps: StepStats[];
}

export async function generateBestOfN(m: BestOfNModels, o: BestOfNOptions): Promise<BestOfNResult> {
  if (!(Number.isInteger(o.K) && o.K >= 2)) throw new ArgumentError(`best-of-N: K must be an integer ≥ 2, got ${o.K}`);
  if (o.prompts.length === 0) throw new ArgumentError('best-of-N: no prompts');
  const cond = noGrad(() => m.encodePrompt(o.prompts));
  const uncond = noGrad(() => m.encodePrompt(['']));
  const size = o.latentSize ?? [m.unet.config.sampleSize ?? 64, m.unet.config.sampleSize ?? 64];
  try {
    const r = await sampleStepwise(
      {
        unet: m.unet, scheduler: m.scheduler, reward: m.reward, prompts: o.prompts, cond, uncond,
        latents: o.latents ?? [m.unet.config.inChannels, size[0], size[1]], gen: new Generator(o.seed ?? 0),
      },
      { numInferenceSteps: o.numInferenceSteps, guidanceScale: o.guidanceScale, eta: o.eta ?? 1, K: o.K, continueWith: 'best', collect: 'none' },
    );
    return { latents: r.latents, finalScores: r.finalScores, steps: r.steps };
  } finally {
    cond.dispose();
    uncond.dispose();
  }
}
