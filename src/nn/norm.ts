// GroupNorm and LayerNorm modules (torch key names: weight, bias).
import { ShapeError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { groupNorm, layerNorm, type NormActivation } from '../tensor/ops/norm.js';
import { Module } from './module.js';
import { constParam } from './init.js';

export interface NormOptions {
  eps?: number;
  /** Learnable weight (ones) and bias (zeros); default true. */
  affine?: boolean;
}

const ones = (n: number): Tensor => constParam([n], 1);
const zeros = (n: number): Tensor => constParam([n], 0);

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

  /** `activation: 'silu'` gives SiLU(GroupNorm(x)) from the norm's own kernels (what diffusers' resnets compute). */
  forward(x: Tensor, opts: { activation?: NormActivation } = {}): Tensor {
    if (x.rank < 2 || x.shape[1] !== this.numChannels) {
      throw new ShapeError(`GroupNorm(${this.numGroups}, ${this.numChannels}): expected [N, ${this.numChannels}, …], got [${x.shape}]`);
    }
    // The module's own weight, bias and eps win; any other key in opts still reaches the op's check.
    return groupNorm(x, this.numGroups, { ...opts, weight: this.weight, bias: this.bias, eps: this.eps });
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
    return layerNorm(x, { weight: this.weight, bias: this.bias, eps: this.eps });
  }
}
