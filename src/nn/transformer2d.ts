// diffusers' Transformer2DModel (continuous input) and BasicTransformerBlock, as SD1.x/SD2.x U-Nets use them.
import { ShapeError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { add } from '../tensor/ops/elementwise.js';
import { linear, matmul } from '../tensor/ops/matmul.js';
import { settings } from '../settings.js';
import { permute, reshape } from '../tensor/ops/layout.js';
import { Attention, Conv2d, FeedForward, GroupNorm, LayerNorm, Linear, Module, ModuleList, type Projection } from './layers.js';

export interface BasicTransformerBlockOptions {
  dim: number;
  heads: number;
  dimHead: number;
  crossAttentionDim: number;
  /** LayerNorm eps of norm1/2/3 (diffusers: 1e-5). */
  normEps?: number;
  gen?: Generator;
}

/** x += attn1(norm1(x)); x += attn2(norm2(x), context); x += ff(norm3(x)) (GEGLU feed-forward). */
export class BasicTransformerBlock extends Module {
  readonly dim: number;

  constructor(o: BasicTransformerBlockOptions) {
    super();
    const eps = o.normEps ?? 1e-5;
    const gen = o.gen;
    this.dim = o.dim;
    this.registerModule('norm1', new LayerNorm(o.dim, { eps }));
    this.registerModule('attn1', new Attention(o.dim, { heads: o.heads, dimHead: o.dimHead, gen }));
    this.registerModule('norm2', new LayerNorm(o.dim, { eps }));
    this.registerModule('attn2', new Attention(o.dim, { heads: o.heads, dimHead: o.dimHead, crossAttentionDim: o.crossAttentionDim, gen }));
    this.registerModule('norm3', new LayerNorm(o.dim, { eps }));
    this.registerModule('ff', new FeedForward(o.dim, { gen }));
  }

  /**
   * x [B, L, dim], context [B, Lc, crossAttentionDim]. Each skip is added by the launch of the branch's last
   * projection, and each norm computed by the launch of the branch's first (src/nn/fused.ts).
   */
  forward(x: Tensor, context: Tensor): Tensor {
    return tidy(() => {
      let h = this.child<Attention>('attn1').normedForward(this.child<LayerNorm>('norm1'), x, undefined, x);
      h = this.child<Attention>('attn2').normedForward(this.child<LayerNorm>('norm2'), h, context, h);
      return this.child<FeedForward>('ff').normedForward(this.child<LayerNorm>('norm3'), h, h);
    });
  }
}

export interface Transformer2DModelOptions {
  heads: number;
  dimHead: number;
  inChannels: number;
  numLayers?: number;
  crossAttentionDim: number;
  /** GroupNorm groups of `norm` (the block's resnet groups). */
  normNumGroups: number;
  /** proj_in/proj_out as Linear (SD2.x) instead of 1x1 convs (SD1.x). */
  useLinearProjection?: boolean;
  gen?: Generator;
}

/**
 * norm (GroupNorm, eps fixed at 1e-6) → proj_in → tokens [B, H·W, C] → transformer_blocks → proj_out → + x.
 * A 1x1 conv is a per-pixel linear map, so both projection kinds run as `linear` on the token layout
 * (the conv's [out, in, 1, 1] weight read as [out, in]).
 */
export class Transformer2DModel extends Module {
  readonly inChannels: number;
  readonly innerDim: number;
  readonly useLinearProjection: boolean;
  readonly numLayers: number;

  constructor(o: Transformer2DModelOptions) {
    super();
    const gen = o.gen;
    this.inChannels = o.inChannels;
    this.innerDim = o.heads * o.dimHead;
    this.useLinearProjection = o.useLinearProjection ?? false;
    this.numLayers = o.numLayers ?? 1;
    this.registerModule('norm', new GroupNorm(o.normNumGroups, o.inChannels, { eps: 1e-6 }));
    if (this.useLinearProjection) this.registerModule('proj_in', new Linear(o.inChannels, this.innerDim, { gen }));
    else this.registerModule('proj_in', new Conv2d(o.inChannels, this.innerDim, 1, { gen }));
    const blocks = new ModuleList<BasicTransformerBlock>();
    for (let i = 0; i < this.numLayers; i++) {
      blocks.append(new BasicTransformerBlock({ dim: this.innerDim, heads: o.heads, dimHead: o.dimHead, crossAttentionDim: o.crossAttentionDim, gen }));
    }
    this.registerModule('transformer_blocks', blocks);
    if (this.useLinearProjection) this.registerModule('proj_out', new Linear(this.innerDim, o.inChannels, { gen }));
    else this.registerModule('proj_out', new Conv2d(this.innerDim, o.inChannels, 1, { gen }));
  }

  /** The projection's [out, in] weight and bias, when it is a 1x1 conv or a plain f32 Linear (else null: run the module and permute). */
  private weights(name: 'proj_in' | 'proj_out'): { w: Tensor; b: Tensor | undefined } | null {
    if (!settings.fuse) return null; // the unfused baseline: permute copies and a separate add
    const m = this.child(name);
    if (m instanceof Conv2d) return { w: reshape(m.weight, [m.outChannels, m.inChannels]), b: m.bias ?? undefined };
    if (m instanceof Linear && m.weight.dtype === 'f32') return { w: m.weight, b: m.bias ?? undefined };
    return null;
  }

  /** The projection on tokens [B, L, in] (a 1x1 conv is a per-pixel linear map: its [out, in, 1, 1] weight read as [out, in]). */
  private project(name: 'proj_in' | 'proj_out', tokens: Tensor): Tensor {
    const m = this.child(name);
    if (m instanceof Conv2d) return linear(tokens, reshape(m.weight, [m.outChannels, m.inChannels]), m.bias ?? undefined);
    return (m as Projection).forward(tokens);
  }

  /**
   * x [B, C, H, W], context [B, Lc, crossAttentionDim] → [B, C, H, W]. The NCHW ↔ token layout changes are
   * strides of the projections' products, not copies: proj_in reads the normed image transposed
   * (tokens = n[b]ᵀ·Wᵀ), and proj_out writes NCHW directly (W·h[b]ᵀ, bias per row) with the skip x added in
   * its epilogue. A LoRA or non-f32 projection falls back to the permutes and its own forward.
   */
  forward(x: Tensor, context: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new ShapeError(`Transformer2DModel(${this.inChannels}): expected [B, ${this.inChannels}, H, W], got [${x.shape}]`);
    }
    const [b, c, hh, ww] = x.shape;
    return tidy(() => {
      const n = this.child<GroupNorm>('norm').forward(x);
      const pin = this.weights('proj_in');
      let h = pin
        ? matmul(reshape(n, [b, c, hh * ww]), pin.w, { transA: true, transB: true, bias: pin.b })
        : this.project('proj_in', reshape(permute(n, [0, 2, 3, 1]), [b, hh * ww, c]));
      for (const blk of this.child<ModuleList<BasicTransformerBlock>>('transformer_blocks')) h = blk.forward(h, context);
      const pout = this.weights('proj_out');
      if (pout) return reshape(matmul(pout.w, h, { transB: true, bias: pout.b, biasRows: true, residual: reshape(x, [b, c, hh * ww]) }), x.shape);
      return add(permute(reshape(this.project('proj_out', h), [b, hh, ww, c]), [0, 3, 1, 2]), x);
    });
  }
}
