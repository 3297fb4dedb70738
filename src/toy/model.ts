// The toy base model's architecture: diffusers/transformers config.json objects for a Stable-Diffusion-shaped
// model sized for a 2-core software GPU. 32×32 RGB ↔ 8×8×4 latents (a three-level AutoencoderKL), a two-layer
// CLIP text encoder of width 32 over the real CLIP BPE vocabulary (77 tokens, as SD), and a two-level U-Net
// [32, 64] with attention only at its 4×4 level (the second down block, the mid block and the first up block:
// four transformers of self- and cross-attention).
//
// Why so small: lavapipe costs ~0.15 ms per dispatch and runs a few GFLOP/s, and the demo samples thousands of
// images with CFG in minutes. This U-Net has 133 dispatches per forward and ~30 MFLOP of convolutions per sample.
// Attention is cheap at 4×4 (16 positions) and sees the whole latent, which is what counts and relations need;
// at 8×8 it would cost more than all the convolutions. Four cross-attention layers (not only the mid block's)
// let the text steer the image at several depths, and give LoRA (LPO) and the LRM's truncated U-Net
// something to work with.
// Why not smaller: the first base used channels [16, 32] (253k U-Net parameters). Its pooled down/mid features,
// the LRM's input, predicted the hidden preference on new prompts no better than ~55% (a logistic probe,
// scripts/toy-lrm-study.ts), so no LRM trained on them could beat chance; on a partly trained [32, 64] U-Net
// (step 1000 of this pre-training) the same probe reached 61–67%. The scheduler is SD1.5's (scaled_linear 0.00085 → 0.012, 1000 steps, DDIM with steps_offset 1 and
// "leading" spacing), so DDIM with CFG works as for SD.
import { AutoencoderKL, type AutoencoderKLConfigJson } from '../nn/vae.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../nn/clip.js';
import { UNet2DConditionModel, type UNet2DConditionConfigJson } from '../nn/unet.js';
import { Generator } from '../tensor/random.js';
import { IMAGE_SIZE } from './scenes.js';
import { ArgumentError } from '../errors.js';
import { findAsset } from '../io/tokenizer.js';

export const DIFFUSERS_VERSION = '0.27.2';

export const TOY_UNET_CONFIG: UNet2DConditionConfigJson = {
  _class_name: 'UNet2DConditionModel',
  _diffusers_version: DIFFUSERS_VERSION,
  sample_size: 8,
  in_channels: 4,
  out_channels: 4,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'],
  up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  block_out_channels: [32, 64],
  layers_per_block: 1,
  attention_head_dim: 2,
  cross_attention_dim: 32,
  norm_num_groups: 8,
  norm_eps: 1e-5,
  act_fn: 'silu',
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  center_input_sample: false,
  use_linear_projection: false,
  transformer_layers_per_block: 1,
  upcast_attention: false,
  only_cross_attention: false,
  dual_cross_attention: false,
  class_embed_type: null,
  addition_embed_type: null,
  time_embedding_type: 'positional',
  resnet_time_scale_shift: 'default',
  conv_in_kernel: 3,
  conv_out_kernel: 3,
};

/** The VAE; `scaling_factor` is replaced after training by 1/std of the training latents (SD's recipe). */
export const TOY_VAE_CONFIG: AutoencoderKLConfigJson = {
  _class_name: 'AutoencoderKL',
  _diffusers_version: DIFFUSERS_VERSION,
  sample_size: IMAGE_SIZE,
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  block_out_channels: [8, 16, 32],
  layers_per_block: 1,
  latent_channels: 4,
  norm_num_groups: 2,
  act_fn: 'silu',
  mid_block_add_attention: false,
  scaling_factor: 1,
  force_upcast: false,
};

/** transformers' CLIPTextConfig of the text encoder (the real CLIP vocabulary: 49408 tokens). */
export const TOY_TEXT_ENCODER_CONFIG: Record<string, unknown> = {
  _name_or_path: 'lpo-wgsl/toy-base',
  architectures: ['CLIPTextModel'],
  model_type: 'clip_text_model',
  hidden_size: 32,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  vocab_size: 49408,
  projection_dim: 32,
  bos_token_id: 49406,
  eos_token_id: 49407,
  pad_token_id: 1,
  initializer_range: 0.02,
  initializer_factor: 1.0,
  attention_dropout: 0.0,
  dropout: 0.0,
  torch_dtype: 'float32',
  transformers_version: '4.30.0',
};

/** SD1.5's scheduler settings, as a DDIMScheduler config. */
export const TOY_SCHEDULER_CONFIG: Record<string, unknown> = {
  _class_name: 'DDIMScheduler',
  _diffusers_version: DIFFUSERS_VERSION,
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  trained_betas: null,
  clip_sample: false,
  set_alpha_to_one: false,
  steps_offset: 1,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
};

export const TOY_MODEL_INDEX: Record<string, unknown> = {
  _class_name: 'StableDiffusionPipeline',
  _diffusers_version: DIFFUSERS_VERSION,
  feature_extractor: [null, null],
  requires_safety_checker: false,
  safety_checker: [null, null],
  scheduler: ['diffusers', 'DDIMScheduler'],
  text_encoder: ['transformers', 'CLIPTextModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
  unet: ['diffusers', 'UNet2DConditionModel'],
  vae: ['diffusers', 'AutoencoderKL'],
};

/** The committed toy base checkpoint (assets/toy/base), found from src/ or the bundled dist/. */
export function toyBaseDir(): string {
  const dir = findAsset('toy/base');
  if (!dir) throw new ArgumentError('cannot find assets/toy/base (the toy base checkpoint); run `npm run toy:pretrain` to make it');
  return dir;
}

export interface ToyModels {
  vae: AutoencoderKL;
  textEncoder: CLIPTextModel;
  unet: UNet2DConditionModel;
}

/** Fresh, randomly initialised toy models (deterministic in `seed`); `overrides` change config fields. */
export function createToyModels(
  seed: number,
  overrides: { vae?: Partial<AutoencoderKLConfigJson>; unet?: Partial<UNet2DConditionConfigJson> } = {},
): ToyModels {
  const gen = new Generator(seed);
  const vae = new AutoencoderKL({ ...TOY_VAE_CONFIG, ...overrides.vae }, { gen });
  const textEncoder = new CLIPTextModel(parseCLIPTextConfig(TOY_TEXT_ENCODER_CONFIG), { gen });
  const unet = new UNet2DConditionModel({ ...TOY_UNET_CONFIG, ...overrides.unet }, { gen });
  return { vae, textEncoder, unet };
}
