// diffusers' AutoencoderKL (SD1.x/SD2.x VAE) built from its config.json, with diffusers' key names; also
// accepts the legacy mid-block attention names (query/key/value/proj_attn) of older checkpoints.
import { ShapeError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { add, affine, exp, maximum, minimum, mul } from '../tensor/ops/elementwise.js';
import { chunk } from '../tensor/ops/layout.js';
import { Attention, Conv2d, GroupNorm, Module, ModuleList } from './layers.js';
import type { CheckpointKeys } from './state_dict.js';
import { PretrainedModel } from './pretrained.js';
import { parseVAEConfig, vaeConfigToJson, vaeLegacyRename, VAE_NORM_EPS, type AutoencoderKLConfigJson, type VAEConfig } from './vae_config.js';

import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet.js';

export { parseVAEConfig, vaeConfigToJson, vaeLegacyRename, SD15_VAE_CONFIG, VAE_NORM_EPS, type AutoencoderKLConfigJson, type VAEConfig } from './vae_config.js';

/**
 * The VAE mid-block attention: group_norm (eps 1e-6) → one head over all channels (to_q/to_k/to_v with bias,
 * to_out.0) on the H·W tokens → + x (diffusers' Attention with residual_connection).
 */
export function vaeAttention(channels: number, groups: number, gen?: Generator): Attention {
  return new Attention(channels, {
    heads: 1, dimHead: channels, qkvBias: true, outBias: true, normNumGroups: groups, normEps: VAE_NORM_EPS, residualConnection: true, gen,
  });
}

/** UNetMidBlock2D without time embedding: resnets.0, then (attentions.i, resnets.i+1). */
export class VAEMidBlock2D extends Module {
  constructor(readonly channels: number, groups: number, readonly addAttention = true, gen?: Generator) {
    super();
    const resnet = () => new ResnetBlock2D({ inChannels: channels, tembChannels: null, groups, eps: VAE_NORM_EPS, gen });
    if (addAttention) this.registerModule('attentions', new ModuleList([vaeAttention(channels, groups, gen)]));
    this.registerModule('resnets', new ModuleList([resnet(), resnet()]));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const resnets = this.child<ModuleList<ResnetBlock2D>>('resnets');
      let h = resnets.at(0).forward(x);
      if (this.addAttention) h = this.child<ModuleList<Attention>>('attentions').at(0).forward(h);
      return resnets.at(1).forward(h);
    });
  }
}

/** DownEncoderBlock2D: resnets, then (unless last) a Downsample2D with (0, 1, 0, 1) padding. */
export class DownEncoderBlock2D extends Module {
  constructor(inChannels: number, outChannels: number, numLayers: number, groups: number, readonly addDownsample: boolean, gen?: Generator) {
    super();
    const resnets = new ModuleList<ResnetBlock2D>();
    for (let i = 0; i < numLayers; i++) {
      resnets.append(new ResnetBlock2D({ inChannels: i === 0 ? inChannels : outChannels, outChannels, tembChannels: null, groups, eps: VAE_NORM_EPS, gen }));
    }
    this.registerModule('resnets', resnets);
    if (addDownsample) this.registerModule('downsamplers', new ModuleList([new Downsample2D(outChannels, outChannels, 0, gen)]));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const r of this.child<ModuleList<ResnetBlock2D>>('resnets')) h = r.forward(h);
      if (this.addDownsample) h = this.child<ModuleList<Downsample2D>>('downsamplers').at(0).forward(h);
      return h;
    });
  }
}

/** UpDecoderBlock2D: resnets (layers_per_block + 1), then (unless last) an Upsample2D. */
export class UpDecoderBlock2D extends Module {
  constructor(inChannels: number, outChannels: number, numLayers: number, groups: number, readonly addUpsample: boolean, gen?: Generator) {
    super();
    const resnets = new ModuleList<ResnetBlock2D>();
    for (let i = 0; i < numLayers; i++) {
      resnets.append(new ResnetBlock2D({ inChannels: i === 0 ? inChannels : outChannels, outChannels, tembChannels: null, groups, eps: VAE_NORM_EPS, gen }));
    }
    this.registerModule('resnets', resnets);
    if (addUpsample) this.registerModule('upsamplers', new ModuleList([new Upsample2D(outChannels, outChannels, gen)]));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const r of this.child<ModuleList<ResnetBlock2D>>('resnets')) h = r.forward(h);
      if (this.addUpsample) h = this.child<ModuleList<Upsample2D>>('upsamplers').at(0).forward(h);
      return h;
    });
  }
}

/** Intermediate outputs of the encoder or decoder (`down_blocks.i` / `up_blocks.i`, `mid_block`). */
export type VAEFeatures = Record<string, Tensor>;

function tidyObject<T>(fn: () => T): T {
  return tidy(fn as unknown as () => Tensor) as unknown as T;
}

export class Encoder extends Module {
  constructor(readonly config: VAEConfig, gen?: Generator) {
    super();
    const c = config;
    const boc = c.blockOutChannels;
    this.registerModule('conv_in', new Conv2d(c.inChannels, boc[0], 3, { padding: 1, gen }));
    const down = new ModuleList<DownEncoderBlock2D>();
    let out = boc[0];
    boc.forEach((ch, i) => {
      const inCh = out;
      out = ch;
      down.append(new DownEncoderBlock2D(inCh, out, c.layersPerBlock, c.normNumGroups, i < boc.length - 1, gen));
    });
    this.registerModule('down_blocks', down);
    const last = boc[boc.length - 1];
    this.registerModule('mid_block', new VAEMidBlock2D(last, c.normNumGroups, c.midBlockAddAttention, gen));
    this.registerModule('conv_norm_out', new GroupNorm(c.normNumGroups, last, { eps: VAE_NORM_EPS }));
    this.registerModule('conv_out', new Conv2d(last, 2 * c.latentChannels, 3, { padding: 1, gen }));
  }

  /** x [B, in, H, W] → moments [B, 2·latent, H/f, W/f] (before quant_conv). */
  forward(x: Tensor, features?: VAEFeatures): Tensor {
    const r = tidyObject(() => {
      const feats: VAEFeatures = {};
      let h = this.child<Conv2d>('conv_in').forward(x);
      let i = 0;
      for (const b of this.child<ModuleList<DownEncoderBlock2D>>('down_blocks')) {
        h = b.forward(h);
        if (features) feats[`down_blocks.${i}`] = h;
        i++;
      }
      h = this.child<VAEMidBlock2D>('mid_block').forward(h);
      if (features) feats.mid_block = h;
      return { out: this.child<Conv2d>('conv_out').forward(this.child<GroupNorm>('conv_norm_out').forward(h, { activation: 'silu' })), feats };
    });
    if (features) Object.assign(features, r.feats);
    return r.out;
  }
}

export class Decoder extends Module {
  constructor(readonly config: VAEConfig, gen?: Generator) {
    super();
    const c = config;
    const rev = [...c.blockOutChannels].reverse();
    this.registerModule('conv_in', new Conv2d(c.latentChannels, rev[0], 3, { padding: 1, gen }));
    this.registerModule('mid_block', new VAEMidBlock2D(rev[0], c.normNumGroups, c.midBlockAddAttention, gen));
    const up = new ModuleList<UpDecoderBlock2D>();
    let out = rev[0];
    rev.forEach((ch, i) => {
      const prev = out;
      out = ch;
      up.append(new UpDecoderBlock2D(prev, out, c.layersPerBlock + 1, c.normNumGroups, i < rev.length - 1, gen));
    });
    this.registerModule('up_blocks', up);
    const first = c.blockOutChannels[0];
    this.registerModule('conv_norm_out', new GroupNorm(c.normNumGroups, first, { eps: VAE_NORM_EPS }));
    this.registerModule('conv_out', new Conv2d(first, c.outChannels, 3, { padding: 1, gen }));
  }

  /** z [B, latent, h, w] (after post_quant_conv) → [B, out, h·f, w·f]. */
  forward(z: Tensor, features?: VAEFeatures): Tensor {
    const r = tidyObject(() => {
      const feats: VAEFeatures = {};
      let h = this.child<Conv2d>('conv_in').forward(z);
      h = this.child<VAEMidBlock2D>('mid_block').forward(h);
      if (features) feats.mid_block = h;
      let i = 0;
      for (const b of this.child<ModuleList<UpDecoderBlock2D>>('up_blocks')) {
        h = b.forward(h);
        if (features) feats[`up_blocks.${i}`] = h;
        i++;
      }
      return { out: this.child<Conv2d>('conv_out').forward(this.child<GroupNorm>('conv_norm_out').forward(h, { activation: 'silu' })), feats };
    });
    if (features) Object.assign(features, r.feats);
    return r.out;
  }
}

/** diffusers' DiagonalGaussianDistribution: mean | logvar halves of the moments, logvar clamped to [-30, 20]. */
export class DiagonalGaussianDistribution {
  readonly mean: Tensor;
  readonly logvar: Tensor;
  private _std: Tensor | null = null;

  /** Takes ownership of `mean` and `logvar` (already clamped). */
  constructor(mean: Tensor, logvar: Tensor) {
    this.mean = mean;
    this.logvar = logvar;
  }

  static fromMoments(moments: Tensor): DiagonalGaussianDistribution {
    const [mean, lv] = tidy(() => {
      const [m, l] = chunk(moments, 2, 1);
      const lo = Tensor.scalar(-30);
      const hi = Tensor.scalar(20);
      return [m, minimum(maximum(l, lo), hi)];
    });
    return new DiagonalGaussianDistribution(mean, lv);
  }

  /** exp(logvar / 2) (computed once, owned by the distribution). */
  get std(): Tensor {
    if (!this._std) this._std = tidy(() => exp(affine(this.logvar, { scale: 0.5 })));
    return this._std;
  }

  /** mean + std · ε with ε ~ N(0, 1) drawn on the host from `gen` (a new tensor for the caller). */
  sample(gen: Generator): Tensor {
    return tidy(() => add(this.mean, mul(this.std, Tensor.randn(this.mean.shape, gen))));
  }

  mode(): Tensor {
    return this.mean.retain();
  }

  dispose(): void {
    this.mean.dispose();
    this.logvar.dispose();
    this._std?.dispose();
    this._std = null;
  }
}

export interface EncodeOptions {
  /** Fill with `encoder.down_blocks.i` / `encoder.mid_block` (tensors for the caller to dispose). */
  features?: VAEFeatures;
}

export class AutoencoderKL extends PretrainedModel {
  readonly config: VAEConfig;

  constructor(config: AutoencoderKLConfigJson | VAEConfig, opts: { gen?: Generator } = {}) {
    super();
    const c = 'blockOutChannels' in config ? (config as VAEConfig) : parseVAEConfig(config as AutoencoderKLConfigJson);
    this.config = c;
    const gen = opts.gen;
    this.registerModule('encoder', new Encoder(c, gen));
    this.registerModule('decoder', new Decoder(c, gen));
    if (c.useQuantConv) this.registerModule('quant_conv', new Conv2d(2 * c.latentChannels, 2 * c.latentChannels, 1, { gen }));
    if (c.usePostQuantConv) this.registerModule('post_quant_conv', new Conv2d(c.latentChannels, c.latentChannels, 1, { gen }));
  }

  /** Latents are multiplied by this after encoding and divided by it before decoding (not applied here). */
  get scalingFactor(): number {
    return this.config.scalingFactor;
  }

  /** Spatial downsampling factor (2^(blocks-1): 8 for SD). */
  get downsampleFactor(): number {
    return 2 ** (this.config.blockOutChannels.length - 1);
  }

  /** image [B, in, H, W] in [-1, 1] → the posterior (no scaling factor). */
  encode(x: Tensor, opts: EncodeOptions = {}): DiagonalGaussianDistribution {
    const c = this.config;
    if (x.rank !== 4 || x.shape[1] !== c.inChannels) throw new ShapeError(`AutoencoderKL.encode: expected [B, ${c.inChannels}, H, W], got [${x.shape}]`);
    const f = this.downsampleFactor;
    if (x.shape[2] % f || x.shape[3] % f) throw new ShapeError(`AutoencoderKL.encode: H and W must be multiples of ${f}, got [${x.shape}]`);
    const { moments, feats } = tidyObject(() => {
      const feats: VAEFeatures | undefined = opts.features ? {} : undefined;
      const h = this.child<Encoder>('encoder').forward(x, feats);
      return { moments: c.useQuantConv ? this.child<Conv2d>('quant_conv').forward(h) : h, feats };
    });
    if (opts.features && feats) for (const [k, v] of Object.entries(feats)) opts.features[k] = v;
    const d = DiagonalGaussianDistribution.fromMoments(moments);
    moments.dispose();
    return d;
  }

  /** z [B, latent, h, w] (already divided by the scaling factor) → image [B, out, h·f, w·f] (no clamping). */
  decode(z: Tensor, opts: EncodeOptions = {}): Tensor {
    const c = this.config;
    if (z.rank !== 4 || z.shape[1] !== c.latentChannels) throw new ShapeError(`AutoencoderKL.decode: expected [B, ${c.latentChannels}, h, w], got [${z.shape}]`);
    const out = tidyObject(() => {
      const feats: VAEFeatures | undefined = opts.features ? {} : undefined;
      const zz = c.usePostQuantConv ? this.child<Conv2d>('post_quant_conv').forward(z) : z;
      const img = this.child<Decoder>('decoder').forward(zz, feats);
      return { img, feats };
    });
    if (opts.features && out.feats) for (const [k, v] of Object.entries(out.feats)) opts.features[k] = v;
    return out.img;
  }

  /** The name config.json gives this class. */
  static readonly className = 'AutoencoderKL';

  /** Builds the model from a diffusers config.json object (what loaders call). */
  static fromConfig(config: Record<string, unknown>): AutoencoderKL {
    return new AutoencoderKL(config as AutoencoderKLConfigJson);
  }

  /** The config as diffusers' config.json. */
  toConfig(): Record<string, unknown> {
    return { ...vaeConfigToJson(this.config) };
  }

  /**
   * Older checkpoints name the mid-block attention query/key/value/proj_attn and store its projections as
   * 1×1 convs [o, i, 1, 1]; both load into to_q/to_k/to_v/to_out.0 (as diffusers converts them).
   */
  protected override checkpointKeys(): CheckpointKeys {
    return { rename: vaeLegacyRename, squeeze1x1: true };
  }
}
