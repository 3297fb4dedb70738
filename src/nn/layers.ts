// Basic layers with torch key names: Conv2d, GroupNorm, LayerNorm, Embedding, Dropout (identity);
// re-exports Linear/LoRA and Attention/FeedForward so `nn/layers.js` is the one import for layers.
import { ShapeError } from '../gpu/errors.js';
import { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { conv2d, type Padding2d } from '../tensor/ops/conv2d.js';
import { groupNorm, layerNorm } from '../tensor/ops/norm.js';
import { embedding } from '../tensor/ops/embedding.js';
import { Module, initGenerator } from './module.js';
import { uniformFanIn } from './linear.js';

export { Module, ModuleList, StateDictError, manualSeed } from './module.js';
export { Linear, LoRALinear, injectLoRA, uniformFanIn, type Projection, type LinearOptions, type LoRAOptions } from './linear.js';
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

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new ShapeError(`Conv2d(${this.inChannels}→${this.outChannels}): expected [N, ${this.inChannels}, H, W], got [${x.shape}]`);
    }
    return conv2d(x, this.weight, this.bias ?? undefined, { stride: this.stride, padding: this.padding });
  }
}

export interface NormOptions {
  eps?: number;
  /** Learnable weight (ones) and bias (zeros); default true. */
  affine?: boolean;
}

function ones(n: number): Tensor {
  return Tensor.fromArray(new Float32Array(n).fill(1), [n]);
}
function zeros(n: number): Tensor {
  return Tensor.fromArray(new Float32Array(n), [n]);
}

export class GroupNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly eps: number;

  constructor(readonly numGroups: number, readonly numChannels: number, opts: NormOptions = {}) {
    super();
    if (numChannels % numGroups !== 0) throw new ShapeError(`GroupNorm: ${numChannels} channels do not split into ${numGroups} groups`);
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? this.registerParameter('weight', ones(numChannels)) : null;
    this.bias = affine ? this.registerParameter('bias', zeros(numChannels)) : null;
  }

  forward(x: Tensor): Tensor {
    if (x.rank < 2 || x.shape[1] !== this.numChannels) {
      throw new ShapeError(`GroupNorm(${this.numGroups}, ${this.numChannels}): expected [N, ${this.numChannels}, …], got [${x.shape}]`);
    }
    return groupNorm(x, this.numGroups, this.weight ?? undefined, this.bias ?? undefined, this.eps);
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly eps: number;

  constructor(readonly dim: number, opts: NormOptions = {}) {
    super();
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? this.registerParameter('weight', ones(dim)) : null;
    this.bias = affine ? this.registerParameter('bias', zeros(dim)) : null;
  }

  forward(x: Tensor): Tensor {
    if (x.shape[x.rank - 1] !== this.dim) throw new ShapeError(`LayerNorm(${this.dim}): input [${x.shape}] has last dim ${x.shape[x.rank - 1]}`);
    return layerNorm(x, this.weight ?? undefined, this.bias ?? undefined, this.eps);
  }
}

export class Embedding extends Module {
  readonly weight: Tensor;

  /** Init N(0, std) (torch: std 1). */
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: { gen?: Generator; std?: number } = {}) {
    super();
    this.weight = this.registerParameter('weight', Tensor.randn([numEmbeddings, embeddingDim], initGenerator(opts.gen), opts.std ?? 1));
  }

  forward(ids: Tensor): Tensor {
    if (ids.dtype !== 'i32') throw new ShapeError(`Embedding: ids must be i32, got ${ids.dtype}`);
    return embedding(ids, this.weight);
  }
}

/** torch.nn.Dropout at inference/p = 0: the identity; holds no parameters (keeps list indices aligned). */
export class Dropout extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}
