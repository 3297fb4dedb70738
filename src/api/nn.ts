// `lpo-wgsl/nn`: Module (PyTorch key names, state dicts) and the layers and blocks the models are built from,
// with their configs. The models themselves (UNet2DConditionModel, AutoencoderKL, CLIPTextModel) are exported
// from the package root.
/// <reference types="@webgpu/types" preserve="true" />

export { Module, ModuleList, StateDictError, type StateDictSource, type LoadOptions, type LoadReport, type StateDictReport, type ShapeMismatch } from '../nn/module.js';
export { Linear, LoRALinear, type Projection, type LinearOptions, type LoRAOptions } from '../nn/linear.js';
export { Conv2d, Embedding, Dropout, type Conv2dOptions, type Padding } from '../nn/layers.js';
export { GroupNorm, LayerNorm, type NormOptions } from '../nn/norm.js';
export { Attention, FeedForward, GEGLU, type AttentionOptions, type FeedForwardOptions } from '../nn/attention.js';
export { ResnetBlock2D, Downsample2D, Upsample2D, type ResnetBlock2DOptions } from '../nn/resnet.js';
export { Transformer2DModel, BasicTransformerBlock, type Transformer2DModelOptions, type BasicTransformerBlockOptions } from '../nn/transformer2d.js';
export { DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D, type DownBlockOutput } from '../nn/unet_blocks.js';
export { TimestepEmbedding, parseUNetConfig, timestepEmbedding, SD15_UNET_CONFIG, type TimestepEmbeddingOptions, type UNet2DConditionConfigJson, type UNetConfig } from '../nn/unet.js';
export { Encoder, Decoder, DownEncoderBlock2D, UpDecoderBlock2D, VAEMidBlock2D, parseVAEConfig, SD15_VAE_CONFIG, type AutoencoderKLConfigJson, type VAEConfig } from '../nn/vae.js';
export { parseCLIPTextConfig } from '../nn/clip.js';

// LoRA adapters on a model (PEFT-style targets and init; diffusers/PEFT key names in files).
export { addLoRA, loraLayers, loraParameters, setLoRABypass, withLoRABypassed, mergeLoRA, unmergeLoRA, DEFAULT_LORA_TARGETS, type LoRAConfig } from '../nn/lora.js';
export { saveLoRA, loadLoRA, injectLoRAFromFile } from '../io/lora.js';
