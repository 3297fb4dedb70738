// Public API of lpo-wgsl, the package root (`import { … } from 'lpo-wgsl'`): the GPU, tensors, autograd, the
// optimiser, errors, and the main models and pipeline. Everything else lives in one subpath each:
//   lpo-wgsl/ops        tensor ops (matmul, conv2d, silu, exp, log, sum, …: short names stay in this namespace)
//   lpo-wgsl/nn         Module, layers and model building blocks, model configs
//   lpo-wgsl/io         safetensors, the CLIP tokenizer, images, model folders, pair datasets, checkpoints
//   lpo-wgsl/diffusion  DDIM internals (log-probability, schedules) and pipeline types
//   lpo-wgsl/lrm        the reward model's training, evaluation, loss, MPCF filter
//   lpo-wgsl/lpo        the LPO loss, thresholds, pair selection, step-wise sampler, GRPO, best-of-N
//   lpo-wgsl/toy        the toy world (empty until src/toy lands)
// Rules (docs/CONVENTIONS.md, "Public API"): each name is exported from exactly one entry point; internals
// (tuning, variant resolution, kernel tables, the verify harness, test references) are not exported; names
// follow PyTorch/diffusers where one exists. test/api.test.ts checks the first two.
/// <reference types="@webgpu/types" preserve="true" />

// Errors: the root classes and the device faults.
export { LpoError, ShapeError, DTypeError, ArgumentError, FileFormatError, UsageError } from './errors.js';
export { NoAdapterError, KernelError, GpuOutOfMemoryError, DeviceLostError, LimitError, NonFiniteError } from './gpu/errors.js';

// The GPU.
export { initGpu, gpu, type Gpu, type KernelTiming } from './gpu/runtime.js';
export type { DeviceOptions, AdapterSummary } from './gpu/device.js';
export type { PoolStats } from './gpu/pool.js';

// Tensors, randomness, autograd.
export { Tensor, tidy, tidyAsync, keep, type DType } from './tensor/tensor.js';
export { Generator } from './tensor/random.js';
export { manualSeed } from './nn/module.js';
export { backward, noGrad, noGradAsync, requireGrad, zeroGrad, isGradEnabled, type BackwardOptions } from './autograd/tape.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult, type GradcheckFailure } from './autograd/gradcheck.js';
export { checkpoint } from './autograd/checkpoint.js';

// Optimisation.
export { AdamW, gradNorm, clipGradNorm, type AdamWOptions } from './optim/adamw.js';

// Models and the pipeline (diffusers' / transformers' names).
export { StableDiffusionPipeline, type GenerateOptions, type GenerateResult, type PipelineComponents, type PipelineLoadOptions, type StepInfo } from './diffusion/pipeline.js';
export { DDIMScheduler } from './diffusion/ddim.js';
export { UNet2DConditionModel, type UNetForwardOptions, type UNetOutput, type UNetMidOutput } from './nn/unet.js';
export { AutoencoderKL, DiagonalGaussianDistribution, type EncodeOptions } from './nn/vae.js';
export { decodeTiled, type TiledDecodeOptions } from './nn/vae_tiling.js';
export { CLIPTextModel, type CLIPTextConfig, type CLIPTextOutput, type CLIPForwardOptions, type TokenIds } from './nn/clip.js';

// The latent reward model and the LPO trainer (their parts: lpo-wgsl/lrm, lpo-wgsl/lpo).
export { LatentRewardModel, type ScoreDetails } from './lrm/model.js';
export { LpoTrainer, LPO_SD15_CONFIG, type LpoTrainConfig, type LpoModels } from './lpo/trainer.js';
