// Tiny LRMs for the LRM tests: an SD-layout U-Net and a CLIP text encoder of a few thousand parameters each
// (the full 49408-token vocabulary, so the real tokenizer works), random weights from a seed.
import '../src/io/pretrained.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../src/nn/clip.js';
import { UNet2DConditionModel, type UNet2DConditionConfigJson } from '../src/nn/unet.js';
import { CLIPTokenizer } from '../src/io/tokenizer.js';
import { Generator } from '../src/tensor/random.js';
import { LatentRewardModel } from '../src/lrm/model.js';
import type { LrmConfig } from '../src/lrm/config.js';
import { brightDarkDataset as brightDark } from '../src/lrm/synthetic.js';
import type { PairDataset } from '../src/io/pairs/types.js';

export const TINY_UNET: UNet2DConditionConfigJson = {
  in_channels: 4,
  out_channels: 4,
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  block_out_channels: [8, 16],
  layers_per_block: 1,
  norm_num_groups: 4,
  cross_attention_dim: 16,
  attention_head_dim: 2,
  sample_size: 8,
};

export const TINY_CLIP = parseCLIPTextConfig({
  hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2,
  max_position_embeddings: 77, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, vocab_size: 49408,
});

let tokenizer: CLIPTokenizer | null = null;
export function tinyTokenizer(): CLIPTokenizer {
  tokenizer ??= CLIPTokenizer.fromFile();
  return tokenizer;
}

/** A full (up blocks included) U-Net and a text encoder, seeded. */
export function tinyBase(seed = 1): { unet: UNet2DConditionModel; textEncoder: CLIPTextModel; tokenizer: CLIPTokenizer } {
  return {
    unet: new UNet2DConditionModel(TINY_UNET, { gen: new Generator(seed) }),
    textEncoder: new CLIPTextModel(TINY_CLIP, { gen: new Generator(seed + 1) }),
    tokenizer: tinyTokenizer(),
  };
}

/** A tiny LRM (truncated U-Net), seeded. */
export function tinyLrm(seed = 1, config: Partial<LrmConfig> = {}): LatentRewardModel {
  return new LatentRewardModel({
    unet: new UNet2DConditionModel(TINY_UNET, { gen: new Generator(seed), upBlocks: false }),
    textEncoder: new CLIPTextModel(TINY_CLIP, { gen: new Generator(seed + 1) }),
    tokenizer: tinyTokenizer(),
    config,
    seed,
  });
}

export { brightDarkPairs } from '../src/lrm/synthetic.js';

/** The synthetic bright/dark pairs (src/lrm/synthetic.ts) as a dataset of `side`×`side` latents. */
export function brightDarkDataset(n: number, seed: number, side = 8, opts: { tieEvery?: number; shift?: number } = {}): PairDataset {
  return brightDark(n, seed, { side, ...opts });
}
