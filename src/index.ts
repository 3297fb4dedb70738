// Public API of lpo-wgsl.
export * from './gpu/errors.js';
export * from './errors.js';
export { initGpu, gpu, Gpu, f32, i32, type Dispatch, type KernelTiming } from './gpu/runtime.js';
export type { KernelSpec } from './gpu/pipelines.js';
export type { PoolStats } from './gpu/pool.js';
export { Tensor, tidy, tidyAsync, keep, numel, type DType } from './tensor/tensor.js';
export { Generator } from './tensor/random.js';
export * from './tensor/ops/elementwise.js';
export * from './tensor/ops/reduce.js';
export * from './tensor/ops/layout.js';
export { backward, noGrad, noGradAsync, record, requireGrad, zeroGrad, Tape, withTape, isGradEnabled } from './autograd/tape.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult } from './autograd/gradcheck.js';
export { conv2d, conv2dOutputSize, normPadding, resolveConv2dVariant, type Conv2dOptions, type Conv2dVariant, type Padding2d } from './tensor/ops/conv2d.js';
export { groupNorm, layerNorm, normConfig } from './tensor/ops/norm.js';
export { avgPool2d, spatialMean, upsampleNearest2x } from './tensor/ops/pool.js';
export * from './diffusion/schedule.js';
export { DDIMScheduler, ddimLogProb, ddimLogProbRef, LOG_SQRT_2PI, type StepOptions, type StepWithLogProbOptions, type StepOutput, type StepWithLogProbOutput, type StepScalars } from './diffusion/ddim.js';
export { verifyReference, formatReport, type VerifyOptions, type VerifyReport } from './verify/run.js';
export { ReferenceDataError } from './verify/manifest.js';
export type { SectionRunner, SectionContext, Row as VerifyRow } from './verify/types.js';
export * from './tensor/ops/matmul.js';
export * from './tensor/ops/softmax.js';
export * from './tensor/ops/cast.js';
export {
  SafetensorsFile, SafetensorsError, parseSafetensorsHeader, readSafetensors, readSafetensorsSync, writeSafetensors, writeSafetensorsSync,
  serializeSafetensors, encodeTensor, decodeF32, decodeInt32, DTYPE_SIZES, MAX_HEADER_BYTES,
  type SafetensorsDType, type TensorInfo, type HostTensor, type ReadTensorOptions, type TensorToWrite, type WritableDType,
} from './io/safetensors.js';
export { CLIPTokenizer, TokenizerError, cleanText, fixText, bytesToUnicode, findAsset, BOS_ID, EOS_ID, PAD_ID, MAX_LENGTH } from './io/tokenizer.js';
export { htmlUnescape } from './io/html-entities.js';
export { openDiffusersModel, type DiffusersModel, type Component, type OpenModelOptions } from './io/diffusers.js';
export { openWeights, findWeights, readJson, ShardedSafetensors, DiffusersError, type WeightsReader } from './io/weights.js';
export { fromPretrained, loadModel, loadWeights, saveWeights, savePretrained, type FromPretrainedOptions, type ModelClass, type PretrainedOptions, type SaveOptions, type ConfigurableModel } from './io/pretrained.js';
export { encodePng, decodePng, writePng, readPng, writePngTensor, ImageError, toByte, type DecodedImage, type ImageLayout } from './io/image.js';
export { checkpoint } from './autograd/checkpoint.js';
export { Module, ModuleList, StateDictError, manualSeed, type StateDictReader, type StateDictSource, type ShapeMismatch, type StateDictReport, type CheckpointKeys, type LoadOptions, type LoadReport } from './nn/module.js';
export { Linear, LoRALinear, injectLoRA, Conv2d, GroupNorm, LayerNorm, Embedding, Dropout, Attention, FeedForward, GEGLU, type Projection } from './nn/layers.js';
export { CLIPTextModel, parseCLIPTextConfig, type CLIPTextConfig, type CLIPTextOutput, type CLIPForwardOptions, type TokenIds } from './nn/clip.js';
export {
  UNet2DConditionModel, TimestepEmbedding, parseUNetConfig, timestepEmbedding, stageEndIndices, SD15_UNET_CONFIG,
  type UNet2DConditionConfigJson, type UNetConfig, type UNetForwardOptions, type UNetOutput, type UNetMidOutput, type UNetDebug,
} from './nn/unet.js';
export { DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D, type DownBlockOutput } from './nn/unet_blocks.js';
export { ResnetBlock2D, Downsample2D, Upsample2D, type ResnetBlock2DOptions } from './nn/resnet.js';
export { Transformer2DModel, BasicTransformerBlock, type Transformer2DModelOptions, type BasicTransformerBlockOptions } from './nn/transformer2d.js';
export {
  AutoencoderKL, DiagonalGaussianDistribution, Encoder as VAEEncoder, Decoder as VAEDecoder, DownEncoderBlock2D, UpDecoderBlock2D, VAEMidBlock2D,
  vaeAttention, parseVAEConfig, vaeConfigToJson, vaeLegacyRename, SD15_VAE_CONFIG, VAE_NORM_EPS, type AutoencoderKLConfigJson, type VAEConfig, type VAEFeatures, type EncodeOptions,
} from './nn/vae.js';
export { StableDiffusionPipeline, type PipelineLoadOptions, type GenerateOptions, type GenerateResult, type PipelineComponents, type StepInfo } from './diffusion/pipeline.js';
export { attention, attentionConfig, dkdvSplit, ATTENTION_MAX_HEAD_DIM, type AttentionOptions } from './tensor/ops/attention.js';
export { loraLinear, loraConfig, resolveLoraVariant, LORA_TILED_MAX_RANK, type LoraVariant } from './tensor/ops/lora.js';
export { geglu } from './tensor/ops/geglu.js';
export { stepDpoLoss } from './tensor/ops/dpo.js';
export { embedding } from './tensor/ops/embedding.js';
export { AdamW, gradNorm, clipGradNorm, type AdamWOptions } from './optim/adamw.js';
