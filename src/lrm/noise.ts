// The forward-noising schedule of LRM training and evaluation: the base model's scheduler config (DDPM's
// add_noise uses the same ᾱ_t as DDIM's), else Stable Diffusion's scaled_linear 0.00085 → 0.012 over 1000 steps.
import { DDIMScheduler } from '../diffusion/ddim.js';
import type { LatentRewardModel } from './model.js';

/** SD1.x's noise schedule (the fields of its scheduler_config.json that add_noise depends on). */
export const SD_NOISE_SCHEDULE: Readonly<Record<string, unknown>> = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
};

export function lrmScheduler(model: Pick<LatentRewardModel, 'schedulerConfig'>): DDIMScheduler {
  return DDIMScheduler.fromConfig(model.schedulerConfig ?? { ...SD_NOISE_SCHEDULE });
}
