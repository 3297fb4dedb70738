// diffusers' AutoencoderKL (SD1.x/SD2.x VAE) built from its config.json, with diffusers' key names; also
// accepts the legacy mid-block attention names (query/key/value/proj_attn) of older checkpoints.
import { LpoError, ShapeError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { ZeroInitGenerator } from './init.js';
import { add, affine, exp, maximum, minimum, mul, silu } from '../tensor/ops/elementwise.js';
import { chunk } from '../tensor/ops/layout.js';
import { keyOptionsFor, loadComponent, loadStateDict, openWeights, type WeightsReader } from '../io/diffusers.js';
import { Attention, Conv2d, GroupNorm, Module, ModuleList } from './layers.js';
import type { LoadReport } from './module.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet.js';

/** The AutoencoderKL options of diffusers' config.json that this implementation reads. */
export interface AutoencoderKLConfigJson {
  in_channels?: number;
  out_channels?: number;
  down_block_types?: string[];
  up_block_types?: string[];
  block_out_channels?: number[];
  layers_per_block?: number;
  act_fn?: string;
  latent_channels?: number;
  norm_num_groups?: number;
  sample_size?: number;
  scaling_factor?: number;
  mid_block_add_attention?: boolean;
  use_quant_conv?: boolean;
  use_post_quant_conv?: boolean;
  [k: string]: unknown;
}

export interface VAEConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  latentChannels: number;
  normNumGroups: number;
  scalingFactor: number;
  midBlockAddAttention: boolean;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
}

/** Every VAE GroupNorm (resnets, attention, conv_norm_out) uses this eps. */
export const VAE_NORM_EPS = 1e-6;

export function parseVAEConfig(json: AutoencoderKLConfigJson): VAEConfig {
  const boc = json.block_out_channels ?? [64];
  const down = json.down_block_types ?? boc.map(() => 'DownEncoderBlock2D');
  const up = json.up_block_types ?? boc.map(() => 'UpDecoderBlock2D');
  if (down.length !== boc.length || up.length !== boc.length) {
    throw new LpoError(`AutoencoderKL config: ${boc.length} block_out_channels, ${down.length} down blocks, ${up.length} up blocks`);
  }
  for (const t of down) if (t !== 'DownEncoderBlock2D') throw new LpoError(`AutoencoderKL config: down block type '${t}' is not supported`);
  for (const t of up) if (t !== 'UpDecoderBlock2D') throw new LpoError(`AutoencoderKL config: up block type '${t}' is not supported`);
  if ((json.act_fn ?? 'silu') !== 'silu') throw new LpoError(`AutoencoderKL config: act_fn '${json.act_fn}' is not supported`);
  return {
    inChannels: json.in_channels ?? 3,
    outChannels: json.out_channels ?? 3,
    blockOutChannels: boc,
    layersPerBlock: json.layers_per_block ?? 1,
    latentChannels: json.latent_channels ?? 4,
    normNumGroups: json.norm_num_groups ?? 32,
    scalingFactor: json.scaling_factor ?? 0.18215,
    midBlockAddAttention: json.mid_block_add_attention ?? true,
    useQuantConv: json.use_quant_conv ?? true,
    usePostQuantConv: json.use_post_quant_conv ?? true,
  };
}

/** SD1.5's VAE config (runwayml/stable-diffusion-v1-5 vae/config.json). */
export const SD15_VAE_CONFIG: AutoencoderKLConfigJson = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  block_out_channels: [128, 256, 512, 512],
  layers_per_block: 2,
  act_fn: 'silu',
  latent_channels: 4,
  norm_num_groups: 32,
  sample_size: 512,
  scaling_factor: 0.18215,
};

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
      return { out: this.child<Conv2d>('conv_out').forward(silu(this.child<GroupNorm>('conv_norm_out').forward(h))), feats };
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
      return { out: this.child<Conv2d>('conv_out').forward(silu(this.child<GroupNorm>('conv_norm_out').forward(h))), feats };
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
    if (!this._std) this._std = tidy(() => exp(affine(this.logvar, 0.5)));
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

export class AutoencoderKL extends Module {
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

  /**
   * Loads weights by key name: every parameter must be in the file and every file key used, with equal shapes
   * (a StateDictError names each problem). Legacy attention names (query/key/value/proj_attn) and
   * 1x1-conv-shaped attention weights are accepted.
   */
  async loadSafetensors(file: WeightsReader | string): Promise<LoadReport & { ignored: string[] }> {
    const f = typeof file === 'string' ? await openWeights(file) : file;
    try {
      return await loadStateDict(this, f, keyOptionsFor('vae'));
    } finally {
      if (typeof file === 'string') await f.close();
    }
  }

  /** config.json and the weights (diffusion_pytorch_model[.fp16].safetensors, shards) of a diffusers `vae` folder. */
  static fromPretrained(folder: string, opts: { preferFp16?: boolean } = {}): Promise<AutoencoderKL> {
    // Zero init (the strict load overwrites every parameter); legacy attention key names are accepted.
    return loadComponent('AutoencoderKL.fromPretrained', folder, (json) => new AutoencoderKL(json as AutoencoderKLConfigJson, { gen: new ZeroInitGenerator() }), { ...opts, keys: keyOptionsFor('vae') });
  }
}
