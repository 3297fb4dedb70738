// `lpo-wgsl/ops`: the tensor ops, each differentiable where it has a gradient (PyTorch names where one exists).
// Short names (exp, log, max, scale, fill, …) live only here: `import * as ops from 'lpo-wgsl/ops'` or named imports.
// Not exported: op-code tables, variant resolution and tuning knobs, backward helpers (sumToShape, broadcastShapes).
/// <reference types="@webgpu/types" preserve="true" />

export {
  neg, exp, log, sqrt, rsqrt, silu, gelu, geluTanh, quickGelu, sigmoid, tanh, relu, abs, square, reciprocal, pow, affine, scale,
  type AffineOptions, add, sub, mul, div, maximum, minimum, equal, expandTo, fill, zeros, ones, zerosLike, onesLike,
} from '../tensor/ops/elementwise.js';
export { sum, mean, max, sumAll, meanAll } from '../tensor/ops/reduce.js';
export { reshape, permute, transpose, slice, concat, chunk, type SliceOptions } from '../tensor/ops/layout.js';
export { softmax, logSoftmax } from '../tensor/ops/softmax.js';
export { matmul, linear, type MatmulOptions, type MatmulActivation } from '../tensor/ops/matmul.js';
export { conv2d, type Conv2dOptions, type Padding2d } from '../tensor/ops/conv2d.js';
export { groupNorm, layerNorm, type GroupNormOptions, type LayerNormOptions, type NormActivation } from '../tensor/ops/norm.js';
export { avgPool2d, spatialMean, upsampleNearest2x } from '../tensor/ops/pool.js';
export { attention, type AttentionOptions } from '../tensor/ops/attention.js';
export { loraLinear } from '../tensor/ops/lora.js';
export { geglu } from '../tensor/ops/geglu.js';
export { embedding } from '../tensor/ops/embedding.js';
export { cast } from '../tensor/ops/cast.js';
export { stepDpoLoss, type StepDpoLossOptions } from '../tensor/ops/dpo.js';
