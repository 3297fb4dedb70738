// What the LPO sampler needs from a reward model: scores of noisy latents at a timestep, for their prompts.
// The Latent Reward Model (src/lrm, LatentRewardModel.score) fits this shape; tests use small stand-ins.
//
// A heterogeneous LRM (LPO-SPEC §5.4: LRM-1.5 also tunes SD2.1) scores another model's latents, which is
// only meaningful when both models encode images into the same latent space: the same VAE. The check below
// compares the VAE configs field by field and names what differs.
import { LpoError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

/** Text encoded once for many score calls (the LRM's TextFeatures). */
export interface EncodedText {
  dispose(): void;
}

export interface RewardModel {
  /**
   * Scores [N] of latents [N, C, h, w] at timestep t (one for all or one per latent), for one prompt per latent
   * (or the result of encodeText on those N prompts). Called under noGrad by the sampler.
   */
  score(latents: Tensor, t: number | readonly number[], text: readonly string[] | EncodedText): Tensor;
  /** Optional: encode N prompts once; the sampler then reuses them at every step and disposes them. */
  encodeText?(prompts: readonly string[]): EncodedText;
}

/** The latent space the sampler hands to the reward model and the reward model was trained on. */
export class LatentSpaceMismatchError extends LpoError {}

/** VAE config fields (diffusers' AutoencoderKL config.json) that define the latent space. */
const LATENT_FIELDS = ['latent_channels', 'scaling_factor', 'block_out_channels', 'down_block_types', 'in_channels', 'layers_per_block', 'shift_factor'] as const;

/**
 * Throws a LatentSpaceMismatchError when the policy's VAE and the reward model's VAE (diffusers config.json
 * objects) define different latent spaces. Weight identity is the caller's business (same folder, same
 * hash); this guards against the common mistake of pairing, e.g., an SDXL LRM with an SD1.5 U-Net.
 */
export function assertSameLatentSpace(policyVae: Record<string, unknown>, rewardVae: Record<string, unknown>, names = { policy: 'the model', reward: 'the LRM' }): void {
  const diffs: string[] = [];
  for (const k of LATENT_FIELDS) {
    const a = JSON.stringify(policyVae[k] ?? null);
    const b = JSON.stringify(rewardVae[k] ?? null);
    if (a !== b) diffs.push(`${k}: ${a} vs ${b}`);
  }
  if (diffs.length) {
    throw new LatentSpaceMismatchError(
      `${names.reward} was built on a different VAE than ${names.policy} (${diffs.join('; ')}): a heterogeneous LRM must share the VAE (latent space) of the model it tunes`,
    );
  }
}
