// Basic layers with torch key names: Conv2d, Embedding, Dropout (identity); re-exports
// Linear/LoRA, GroupNorm/LayerNorm and Attention/FeedForward so `nn/layers.js` is the one import for layers.
import { ShapeError, DTypeError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { conv2d, type Padding2d } from '../tensor/ops/conv2d.js';
import { embedding } from '../tensor/ops/embedding.js';
import { Module, initGenerator } from './module.js';
import { uniformFanIn } from './linear.js';
import { normalParam } from './init.js';

export { Module, ModuleList, StateDictError, manualSeed } from './module.js';
export { Linear, LoRALinear, injectLoRA, uniformFanIn, type Projection, type LinearOptions, type LoRAOptions } from './linear.js';
export { GroupNorm, LayerNorm, type NormOptions } from './norm.js';
export { Attention, FeedForward, GEGLU, type AttentionOptions, type FeedForwardOptions } from './attention.js';

export type Padding = Padding2d;

export interface Conv2dOptions {
  stride?: number;
  /** p, [ph, pw] or [top, bottom, left, right]. */
  padding?: Padding;
  bias?: boolean;
  gen?: Generator;
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly kernelSize: [number, number];
  readonly stride: number;
  readonly padding: Padding;

  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: number | [number, number], opts: Conv2dOptions = {}) {
    super();
    const gen = initGenerator(opts.gen);
    this.kernelSize = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    const [kh, kw] = this.kernelSize;
    const fanIn = inChannels * kh * kw;
    this.weight = this.registerParameter('weight', uniformFanIn([outChannels, inChannels, kh, kw], fanIn, gen));
    this.bias = opts.bias ?? true ? this.registerParameter('bias', uniformFanIn([outChannels], fanIn, gen)) : null;
  }

  /** Module.half() may store the weight in f16 (conv2d then runs on the f16 kernels). */
  protected override halfParameters(): readonly string[] {
    return ['weight'];
  }

  /** `shift` [N, out] and `residual` (the output's shape) are added in the convolution's epilogue. */
  forward(x: Tensor, epilogue: { shift?: Tensor; residual?: Tensor } = {}): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new ShapeError(`Conv2d(${this.inChannels}→${this.outChannels}): expected [N, ${this.inChannels}, H, W], got [${x.shape}]`);
    }
    return conv2d(x, this.weight, this.bias ?? undefined, { stride: this.stride, padding: this.padding, ...epilogue });
  }
}

export class Embedding extends Module {
  readonly weight: Tensor;

  /** Init N(0, std) (torch: std 1). */
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: { gen?: Generator; std?: number } = {}) {
    super();
    this.weight = this.registerParameter('weight', normalParam([numEmbeddings, embeddingDim], opts.std ?? 1, initGenerator(opts.gen)));
  }

  forward(ids: Tensor): Tensor {
    if (ids.dtype !== 'i32') throw new DTypeError(`Embedding: ids must be i32, got ${ids.dtype}`);
    return embedding(ids, this.weight);
  }
}

/** torch.nn.Dropout at inference/p = 0: the identity; holds no parameters (keeps list indices aligned). */
export class Dropout extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}
