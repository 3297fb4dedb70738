// A tiny LPO world for the sampler/trainer tests: the LRM tests' tiny SD-layout U-Net and CLIP text encoder
// (random, seeded), SD's DDIM schedule, a prompt encoder, and a reward that records how it is called.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tinyBase } from './lrm-tiny.js';
import { DDIMScheduler } from '../src/diffusion/ddim.js';
import type { UNet2DConditionModel } from '../src/nn/unet.js';
import { Tensor, tidy } from '../src/tensor/tensor.js';
import { mean } from '../src/tensor/ops/reduce.js';
import { reshape, slice } from '../src/tensor/ops/layout.js';
import { scale } from '../src/tensor/ops/elementwise.js';
import type { RewardModel } from '../src/lpo/reward.js';
import type { LpoModels } from '../src/lpo/trainer.js';

const ROOT = resolve(__dirname, '..');
export const GOLDEN = [join(ROOT, 'test/fixtures/golden'), resolve(ROOT, '../shared/golden')].find((d) => existsSync(join(d, 'ddim/scheduler_config.json')))!;

export function sdScheduler(): DDIMScheduler {
  return DDIMScheduler.fromFile(join(GOLDEN, 'ddim/scheduler_config.json'));
}

/** Calls seen by a RecordingReward. */
export interface RewardCall { t: number | readonly number[]; shape: readonly number[]; prompts: readonly string[]; scores: Float32Array | null }

/**
 * A reward that prefers a high channel-0 mean (× `gain`): known, cheap, and it records every call (timestep,
 * latent shape, prompts); `scores` are filled in by `settle()`.
 */
export class RecordingReward implements RewardModel {
  readonly calls: RewardCall[] = [];
  private pending: [RewardCall, Tensor][] = [];
  constructor(private readonly gain = 20) {}
  score(latents: Tensor, t: number | readonly number[], text: readonly string[] | { dispose(): void }): Tensor {
    const prompts = Array.isArray(text) ? text : [];
    const [N, C, h, w] = latents.shape;
    const s = tidy(() => scale(mean(reshape(slice(latents, 1, { start: 0, end: 1 }), [N, h * w]), 1), this.gain));
    const call: RewardCall = { t: typeof t === 'number' ? t : [...t], shape: [N, C, h, w], prompts, scores: null };
    this.calls.push(call);
    this.pending.push([call, s.retain()]);
    return s;
  }
  async settle(): Promise<void> {
    for (const [c, t] of this.pending) {
      c.scores = await t.toArray();
      t.dispose();
    }
    this.pending = [];
  }
}

/** The tiny base model and its prompt encoder (seeded: the same seed gives the same weights). */
export function tinyWorld(seed = 1): { unet: UNet2DConditionModel; encodePrompt: (p: readonly string[]) => Tensor; dispose: () => void } {
  const base = tinyBase(seed);
  const encodePrompt = (prompts: readonly string[]) => {
    const o = base.textEncoder.forward(base.tokenizer.encodeBatch(prompts));
    o.poolerOutput.dispose();
    return o.lastHiddenState;
  };
  return { unet: base.unet, encodePrompt, dispose: () => { base.unet.dispose(); base.textEncoder.dispose(); } };
}

export function tinyModels(reward: RewardModel, seed = 1): LpoModels & { dispose: () => void } {
  const w = tinyWorld(seed);
  return { unet: w.unet, encodePrompt: w.encodePrompt, scheduler: sdScheduler(), reward, dispose: w.dispose };
}
