// Public API of lpo-wgsl.
export * from './gpu/errors.js';
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
export { conv2d, conv2dOutputSize, normPadding, type Conv2dOptions, type Conv2dVariant, type Padding2d } from './tensor/ops/conv2d.js';
export { groupNorm, layerNorm, normConfig } from './tensor/ops/norm.js';
export { avgPool2d, spatialMean, upsampleNearest2x } from './tensor/ops/pool.js';
