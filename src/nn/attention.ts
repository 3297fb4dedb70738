// diffusers' Attention (to_q/to_k/to_v/to_out.0) and GEGLU FeedForward (ff.net.0.proj, ff.net.2).
import { ShapeError } from '../errors.js';
import { Generator } from '../tensor/random.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { add, scale } from '../tensor/ops/elementwise.js';
import { attention } from '../tensor/ops/attention.js';
import { geglu } from '../tensor/ops/geglu.js';
import { reshape, transpose } from '../tensor/ops/layout.js';
import { Module, ModuleList, initGenerator } from './module.js';
import { Linear, type Projection } from './linear.js';
import { projectAdd, projectGeglu, projectMany, projectNormed } from './fused.js';
import { GroupNorm, LayerNorm } from './norm.js';

export interface AttentionOptions {
  /** Context width for cross-attention (default: queryDim, self-attention). */
  crossAttentionDim?: number;
  heads?: number;
  dimHead?: number;
  /** Bias on to_q/to_k/to_v (diffusers: false). */
  qkvBias?: boolean;
  /** Bias on to_out.0 (diffusers: true). */
  outBias?: boolean;
  /** diffusers' `norm_num_groups`: a GroupNorm `group_norm` over channels before the projections. */
  normNumGroups?: number;
  /** eps of that GroupNorm (diffusers default 1e-5; the VAE uses 1e-6). */
  normEps?: number;
  /** Add the input to the output (diffusers' `residual_connection`). */
  residualConnection?: boolean;
  /** Divide the output by this (diffusers' `rescale_output_factor`, default 1). */
  rescaleOutputFactor?: number;
  gen?: Generator;
}

/** A parameterless slot (diffusers' Dropout at to_out.1 / net.1). */
class Identity extends Module {}

/**
 * softmax(q kᵀ / √d) v over `heads` heads, with q from x and k, v from `context` (cross-attention)
 * or from x (self-attention). Takes [B, L, C] or, like diffusers, [B, C, H, W] (as H·W tokens).
 */
export class Attention extends Module {
  readonly heads: number;
  readonly dimHead: number;
  readonly innerDim: number;
  readonly crossAttentionDim: number;
  readonly residualConnection: boolean;
  readonly rescaleOutputFactor: number;

  constructor(readonly queryDim: number, opts: AttentionOptions = {}) {
    super();
    const gen = initGenerator(opts.gen);
    this.residualConnection = opts.residualConnection ?? false;
    this.rescaleOutputFactor = opts.rescaleOutputFactor ?? 1;
    if (opts.normNumGroups) this.registerModule('group_norm', new GroupNorm(opts.normNumGroups, queryDim, { eps: opts.normEps ?? 1e-5 }));
    this.heads = opts.heads ?? 8;
    this.dimHead = opts.dimHead ?? 64;
    this.innerDim = this.heads * this.dimHead;
    this.crossAttentionDim = opts.crossAttentionDim ?? queryDim;
    const qkvBias = opts.qkvBias ?? false;
    this.registerModule('to_q', new Linear(queryDim, this.innerDim, { bias: qkvBias, gen }));
    this.registerModule('to_k', new Linear(this.crossAttentionDim, this.innerDim, { bias: qkvBias, gen }));
    this.registerModule('to_v', new Linear(this.crossAttentionDim, this.innerDim, { bias: qkvBias, gen }));
    this.registerModule('to_out', new ModuleList<Module>([new Linear(this.innerDim, queryDim, { bias: opts.outBias ?? true, gen }), new Identity()]));
  }

  get toQ(): Projection { return this.child('to_q'); }
  get toK(): Projection { return this.child('to_k'); }
  get toV(): Projection { return this.child('to_v'); }
  get toOut(): Projection { return this.child<ModuleList>('to_out').at(0) as Projection; }

  private get groupNorm(): GroupNorm | null {
    for (const [n, m] of this.namedChildren()) if (n === 'group_norm') return m as GroupNorm;
    return null;
  }

  /**
   * diffusers' AttnProcessor: [B, C, H, W] input attends over H·W tokens and comes back in that layout.
   * `residual` (token input only, the output's shape) is added by to_out's launch: a transformer block's skip.
   */
  forward(x: Tensor, context?: Tensor, residual?: Tensor): Tensor {
    return this.normedForward(null, x, context, residual);
  }

  /**
   * forward(norm(x), context, residual) for token input: a transformer block's pre-norm, computed by the q/k/v
   * projections' launch when they are plain f32 Linears (src/nn/fused.ts).
   */
  normedForward(norm: LayerNorm | null, x: Tensor, context?: Tensor, residual?: Tensor): Tensor {
    if (norm && !residual) throw new ShapeError('Attention: normedForward takes token input with its residual (a transformer block)');
    if (residual) {
      if (x.rank !== 3 || this.groupNorm || this.residualConnection || this.rescaleOutputFactor !== 1) {
        throw new ShapeError('Attention: a fused residual needs token input [B, L, C] and no group_norm, residual_connection or rescale');
      }
      return tidy(() => this.attend(x, context, residual, norm));
    }
    return tidy(() => {
      let tokens: Tensor;
      const gn = this.groupNorm;
      if (x.rank === 4) {
        const [b, c, h, w] = x.shape;
        if (c !== this.queryDim) throw new ShapeError(`Attention: expected [B, ${this.queryDim}, H, W], got [${x.shape}]`);
        const flat = reshape(x, [b, c, h * w]);
        tokens = transpose(gn ? gn.forward(flat) : flat, 1, 2);
      } else {
        if (x.rank !== 3 || x.shape[2] !== this.queryDim) throw new ShapeError(`Attention: expected [B, L, ${this.queryDim}], got [${x.shape}]`);
        tokens = gn ? transpose(gn.forward(transpose(x, 1, 2)), 1, 2) : x;
      }
      let y = this.attend(tokens, context);
      if (x.rank === 4) y = reshape(transpose(y, 1, 2), x.shape);
      if (this.residualConnection) y = add(y, x);
      if (this.rescaleOutputFactor !== 1) y = scale(y, 1 / this.rescaleOutputFactor);
      return y;
    });
  }

  /**
   * Self-attention's q, k, v come from one launch, cross-attention's k and v from another (plain f32
   * projections; src/nn/fused.ts), with `norm` of x computed by the launch that reads x.
   */
  private attend(x: Tensor, context?: Tensor, residual?: Tensor, norm: LayerNorm | null = null): Tensor {
    const ctx = context ?? x;
    if (ctx.rank !== 3 || ctx.shape[0] !== x.shape[0] || ctx.shape[2] !== this.crossAttentionDim) {
      throw new ShapeError(`Attention: context [${ctx.shape}] must be [${x.shape[0]}, L, ${this.crossAttentionDim}]`);
    }
    const project = (ps: Projection[]) => (norm ? projectNormed(ps, norm, x) : projectMany(ps, x));
    const [q, k, v] = context ? [project([this.toQ])[0], ...projectMany([this.toK, this.toV], context)] : project([this.toQ, this.toK, this.toV]);
    const a = attention(q, k, v, this.heads, { scale: 1 / Math.sqrt(this.dimHead) });
    const out = residual ? projectAdd(this.toOut, a, residual) : this.toOut.forward(a);
    [q, k, v, a].forEach((t) => t.dispose());
    return out;
  }
}

/** net.0 of diffusers' FeedForward: proj to 2·inner, split [value | gate], value·gelu(gate) (erf GELU). */
export class GEGLU extends Module {
  constructor(readonly dimIn: number, readonly dimOut: number, gen?: Generator) {
    super();
    this.registerModule('proj', new Linear(dimIn, 2 * dimOut, { gen: initGenerator(gen) }));
  }

  get proj(): Projection { return this.child('proj'); }

  forward(x: Tensor): Tensor {
    const h = this.proj.forward(x);
    const out = geglu(h);   // one launch each way (value first, gate second, erf GELU)
    h.dispose();
    return out;
  }
}

export interface FeedForwardOptions {
  dimOut?: number;
  /** Inner width = dim · mult (default 4). */
  mult?: number;
  gen?: Generator;
}

/** diffusers FeedForward with GEGLU: ff.net.0.proj → value·gelu(gate) → ff.net.2. */
export class FeedForward extends Module {
  readonly innerDim: number;
  readonly dimOut: number;

  constructor(readonly dim: number, opts: FeedForwardOptions = {}) {
    super();
    const gen = initGenerator(opts.gen);
    this.innerDim = dim * (opts.mult ?? 4);
    this.dimOut = opts.dimOut ?? dim;
    this.registerModule('net', new ModuleList<Module>([new GEGLU(dim, this.innerDim, gen), new Identity(), new Linear(this.innerDim, this.dimOut, { gen })]));
  }

  get net(): ModuleList<Module> { return this.child('net'); }

  /** `residual` (the output's shape) is added by the last projection's launch. */
  forward(x: Tensor, residual?: Tensor): Tensor {
    return this.normedForward(null, x, residual);
  }

  /**
   * forward(norm(x), residual): with plain f32 projections, the norm and GEGLU run in net.0.proj's launch and the
   * residual in net.2's (two launches for the whole feed-forward; src/nn/fused.ts).
   */
  normedForward(norm: LayerNorm | null, x: Tensor, residual?: Tensor): Tensor {
    const h = projectGeglu((this.net.at(0) as GEGLU).proj, x, norm);
    const last = this.net.at(2) as Projection;
    const out = residual ? projectAdd(last, h, residual) : last.forward(h);
    h.dispose();
    return out;
  }
}
