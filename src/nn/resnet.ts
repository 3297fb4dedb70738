// diffusers' ResnetBlock2D, Downsample2D and Upsample2D (key names: norm1, conv1, time_emb_proj, norm2,
// conv2, conv_shortcut; downsamplers.N.conv; upsamplers.N.conv).
import { ShapeError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { add, scale } from '../tensor/ops/elementwise.js';
import { upsampleNearest2x } from '../tensor/ops/pool.js';
import { Conv2d, GroupNorm, Linear, Module, type Projection } from './layers.js';

export interface ResnetBlock2DOptions {
  inChannels: number;
  outChannels?: number;
  /** Width of the (already SiLU-activated) time embedding; null: no time_emb_proj (the VAE's resnets). */
  tembChannels: number | null;
  groups: number;
  /** GroupNorm groups of norm2 (default: groups). */
  groupsOut?: number;
  /** GroupNorm eps of norm1 and norm2 (the U-Net: norm_eps; the VAE: 1e-6). */
  eps: number;
  /** Output is (shortcut + h) / outputScaleFactor (default 1). */
  outputScaleFactor?: number;
  gen?: Generator;
}

/**
 * norm1 → SiLU → conv1 → + time_emb_proj(SiLU(temb)) per channel → norm2 → SiLU → conv2, plus the shortcut
 * (a 1x1 conv_shortcut when the channel counts differ).
 */
export class ResnetBlock2D extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly outputScaleFactor: number;
  readonly hasTemb: boolean;
  readonly hasShortcut: boolean;

  constructor(o: ResnetBlock2DOptions) {
    super();
    const out = o.outChannels ?? o.inChannels;
    this.inChannels = o.inChannels;
    this.outChannels = out;
    this.outputScaleFactor = o.outputScaleFactor ?? 1;
    this.hasTemb = o.tembChannels !== null;
    this.hasShortcut = o.inChannels !== out;
    const gen = o.gen;
    this.registerModule('norm1', new GroupNorm(o.groups, o.inChannels, { eps: o.eps }));
    this.registerModule('conv1', new Conv2d(o.inChannels, out, 3, { padding: 1, gen }));
    if (o.tembChannels !== null) this.registerModule('time_emb_proj', new Linear(o.tembChannels, out, { gen }));
    this.registerModule('norm2', new GroupNorm(o.groupsOut ?? o.groups, out, { eps: o.eps }));
    this.registerModule('conv2', new Conv2d(out, out, 3, { padding: 1, gen }));
    if (this.hasShortcut) this.registerModule('conv_shortcut', new Conv2d(o.inChannels, out, 1, { gen }));
  }

  /**
   * `embAct` is SiLU(temb) [B, tembChannels] (computed once per U-Net forward), or omitted for the VAE.
   * Five launches when fused (settings.fuse): SiLU(norm1) and SiLU(norm2) in the norms' kernels, the time
   * embedding added in conv1's epilogue and the shortcut in conv2's, plus time_emb_proj.
   */
  forward(x: Tensor, embAct?: Tensor | null): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new ShapeError(`ResnetBlock2D(${this.inChannels}→${this.outChannels}): expected [B, ${this.inChannels}, H, W], got [${x.shape}]`);
    }
    if (this.hasTemb && !embAct) throw new ShapeError('ResnetBlock2D: this block has time_emb_proj but no time embedding was given');
    return tidy(() => {
      let h = this.child<GroupNorm>('norm1').forward(x, { activation: 'silu' });
      const shift = this.hasTemb && embAct ? this.child<Projection>('time_emb_proj').forward(embAct) : undefined;
      h = this.child<Conv2d>('conv1').forward(h, { shift });
      h = this.child<GroupNorm>('norm2').forward(h, { activation: 'silu' });
      const sc = this.hasShortcut ? this.child<Conv2d>('conv_shortcut').forward(x) : x;
      if (this.outputScaleFactor === 1) return this.child<Conv2d>('conv2').forward(h, { residual: sc });
      return scale(add(sc, this.child<Conv2d>('conv2').forward(h)), 1 / this.outputScaleFactor);
    });
  }
}

/**
 * Stride-2 3x3 conv (`conv`). padding 1 (the U-Net's downsample_padding) pads all sides; padding 0 (the VAE)
 * pads only right and bottom by one pixel, as diffusers' F.pad(x, (0, 1, 0, 1)).
 */
export class Downsample2D extends Module {
  constructor(readonly channels: number, readonly outChannels: number = channels, readonly padding = 1, gen?: Generator) {
    super();
    const pad: [number, number, number, number] = padding === 0 ? [0, 1, 0, 1] : [padding, padding, padding, padding];
    this.registerModule('conv', new Conv2d(channels, outChannels, 3, { stride: 2, padding: pad, gen }));
  }

  forward(x: Tensor): Tensor {
    return this.child<Conv2d>('conv').forward(x);
  }
}

/** Nearest-neighbour 2x upsampling followed by a 3x3 conv (`conv`, padding 1). */
export class Upsample2D extends Module {
  constructor(readonly channels: number, readonly outChannels: number = channels, gen?: Generator) {
    super();
    this.registerModule('conv', new Conv2d(channels, outChannels, 3, { padding: 1, gen }));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.child<Conv2d>('conv').forward(upsampleNearest2x(x)));
  }
}
