// diffusers' U-Net blocks of the SD1.x/SD2.x layout: CrossAttnDownBlock2D, DownBlock2D, UNetMidBlock2DCrossAttn,
// UpBlock2D, CrossAttnUpBlock2D (children resnets / attentions / downsamplers / upsamplers).
import { ShapeError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { concat } from '../tensor/ops/layout.js';
import { Module, ModuleList } from './layers.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet.js';
import { Transformer2DModel } from './transformer2d.js';
import { checkpoint } from '../autograd/checkpoint.js';

/** Module flag read by the blocks: run each resnet / transformer under gradient checkpointing. */
export interface Checkpointable {
  gradientCheckpointing: boolean;
}

/** A resnet or transformer call, recomputed in backward when `ck` (diffusers' gradient checkpointing). */
function resnetCall(ck: boolean, r: ResnetBlock2D, h: Tensor, embAct: Tensor): Tensor {
  return ck ? checkpoint((a, b) => r.forward(a, b), [h, embAct]) : r.forward(h, embAct);
}
function attnCall(ck: boolean, t: Transformer2DModel, h: Tensor, context: Tensor): Tensor {
  return ck ? checkpoint((a, b) => t.forward(a, b), [h, context]) : t.forward(h, context);
}

interface CommonBlockOptions {
  numLayers: number;
  tembChannels: number;
  eps: number;
  groups: number;
  gen?: Generator;
}

interface CrossAttnOptions {
  /** Number of attention heads (diffusers' num_attention_heads, i.e. the config's attention_head_dim). */
  heads: number;
  crossAttentionDim: number;
  transformerLayers: number;
  useLinearProjection: boolean;
}

function transformer(channels: number, o: CommonBlockOptions & CrossAttnOptions): Transformer2DModel {
  return new Transformer2DModel({
    heads: o.heads,
    dimHead: channels / o.heads,
    inChannels: channels,
    numLayers: o.transformerLayers,
    crossAttentionDim: o.crossAttentionDim,
    normNumGroups: o.groups,
    useLinearProjection: o.useLinearProjection,
    gen: o.gen,
  });
}

/** What a down block returns: the hidden state and the per-layer (and downsampler) outputs it adds to the skip tuple. */
export interface DownBlockOutput {
  hidden: Tensor;
  /** Skip entries in order: layer outputs, then the downsampler's (the last is the same tensor as `hidden`). */
  states: Tensor[];
}

export interface DownBlockOptions extends CommonBlockOptions {
  inChannels: number;
  outChannels: number;
  addDownsample: boolean;
  downsamplePadding: number;
}

/** DownBlock2D (no attention) or CrossAttnDownBlock2D (a Transformer2DModel after each resnet). */
export class DownBlock2D extends Module implements Checkpointable {
  gradientCheckpointing = false;
  readonly hasCrossAttention: boolean;
  readonly hasDownsample: boolean;

  constructor(o: DownBlockOptions, cross?: CrossAttnOptions) {
    super();
    this.hasCrossAttention = cross !== undefined;
    this.hasDownsample = o.addDownsample;
    const resnets = new ModuleList<ResnetBlock2D>();
    const attentions = new ModuleList<Transformer2DModel>();
    for (let i = 0; i < o.numLayers; i++) {
      resnets.append(new ResnetBlock2D({ inChannels: i === 0 ? o.inChannels : o.outChannels, outChannels: o.outChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, gen: o.gen }));
      if (cross) attentions.append(transformer(o.outChannels, { ...o, ...cross }));
    }
    if (cross) this.registerModule('attentions', attentions);
    this.registerModule('resnets', resnets);
    if (o.addDownsample) this.registerModule('downsamplers', new ModuleList([new Downsample2D(o.outChannels, o.outChannels, o.downsamplePadding, o.gen)]));
  }

  get resnets(): ModuleList<ResnetBlock2D> { return this.child('resnets'); }
  get attentions(): ModuleList<Transformer2DModel> | null { return this.hasCrossAttention ? this.child<ModuleList<Transformer2DModel>>('attentions') : null; }
  get downsamplers(): ModuleList<Downsample2D> | null { return this.hasDownsample ? this.child<ModuleList<Downsample2D>>('downsamplers') : null; }

  forward(x: Tensor, embAct: Tensor, context?: Tensor): DownBlockOutput {
    if (this.hasCrossAttention && !context) throw new ShapeError('CrossAttnDownBlock2D: encoder hidden states are required');
    const states: Tensor[] = [];
    let h = x;
    const attns = this.attentions;
    let i = 0;
    for (const r of this.resnets) {
      h = tidy(() => {
        const ck = this.gradientCheckpointing;
        const y = resnetCall(ck, r, h, embAct);
        return attns ? attnCall(ck, attns.at(i), y, context!) : y;
      });
      states.push(h);
      i++;
    }
    const ds = this.downsamplers;
    if (ds) {
      h = ds.at(0).forward(h);
      states.push(h);
    }
    return { hidden: h, states };
  }
}

export interface MidBlockOptions extends CommonBlockOptions {
  inChannels: number;
  outputScaleFactor?: number;
}

/** UNetMidBlock2DCrossAttn: resnets.0, then (attentions.i, resnets.i+1) for each layer. */
export class UNetMidBlock2DCrossAttn extends Module implements Checkpointable {
  gradientCheckpointing = false;

  constructor(o: MidBlockOptions, cross: CrossAttnOptions) {
    super();
    const resnet = () => new ResnetBlock2D({ inChannels: o.inChannels, outChannels: o.inChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, outputScaleFactor: o.outputScaleFactor, gen: o.gen });
    const resnets = new ModuleList<ResnetBlock2D>([resnet()]);
    const attentions = new ModuleList<Transformer2DModel>();
    for (let i = 0; i < o.numLayers; i++) {
      attentions.append(transformer(o.inChannels, { ...o, ...cross }));
      resnets.append(resnet());
    }
    this.registerModule('attentions', attentions);
    this.registerModule('resnets', resnets);
  }

  forward(x: Tensor, embAct: Tensor, context: Tensor): Tensor {
    return tidy(() => {
      const resnets = this.child<ModuleList<ResnetBlock2D>>('resnets');
      const attns = this.child<ModuleList<Transformer2DModel>>('attentions');
      const ck = this.gradientCheckpointing;
      let h = resnetCall(ck, resnets.at(0), x, embAct);
      for (let i = 0; i < attns.length; i++) h = resnetCall(ck, resnets.at(i + 1), attnCall(ck, attns.at(i), h, context), embAct);
      return h;
    });
  }
}

export interface UpBlockOptions extends CommonBlockOptions {
  inChannels: number;
  prevOutputChannels: number;
  outChannels: number;
  addUpsample: boolean;
}

/**
 * UpBlock2D or CrossAttnUpBlock2D: each resnet takes cat([h, skip], channels) with skips popped from the end
 * of the down path's tuple; resnet i's skip has inChannels channels for the last layer, outChannels otherwise.
 */
export class UpBlock2D extends Module implements Checkpointable {
  gradientCheckpointing = false;
  readonly hasCrossAttention: boolean;
  readonly hasUpsample: boolean;
  readonly numLayers: number;

  constructor(o: UpBlockOptions, cross?: CrossAttnOptions) {
    super();
    this.hasCrossAttention = cross !== undefined;
    this.hasUpsample = o.addUpsample;
    this.numLayers = o.numLayers;
    const resnets = new ModuleList<ResnetBlock2D>();
    const attentions = new ModuleList<Transformer2DModel>();
    for (let i = 0; i < o.numLayers; i++) {
      const skip = i === o.numLayers - 1 ? o.inChannels : o.outChannels;
      const resIn = i === 0 ? o.prevOutputChannels : o.outChannels;
      resnets.append(new ResnetBlock2D({ inChannels: resIn + skip, outChannels: o.outChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, gen: o.gen }));
      if (cross) attentions.append(transformer(o.outChannels, { ...o, ...cross }));
    }
    if (cross) this.registerModule('attentions', attentions);
    this.registerModule('resnets', resnets);
    if (o.addUpsample) this.registerModule('upsamplers', new ModuleList([new Upsample2D(o.outChannels, o.outChannels, o.gen)]));
  }

  /** `skips` are this block's numLayers entries of the skip tuple, in tuple order (the last is consumed first). */
  forward(x: Tensor, skips: readonly Tensor[], embAct: Tensor, context?: Tensor): Tensor {
    if (skips.length !== this.numLayers) throw new ShapeError(`UpBlock2D: needs ${this.numLayers} skip tensors, got ${skips.length}`);
    if (this.hasCrossAttention && !context) throw new ShapeError('CrossAttnUpBlock2D: encoder hidden states are required');
    return tidy(() => {
      const resnets = this.child<ModuleList<ResnetBlock2D>>('resnets');
      const attns = this.hasCrossAttention ? this.child<ModuleList<Transformer2DModel>>('attentions') : null;
      let h = x;
      for (let i = 0; i < this.numLayers; i++) {
        const skip = skips[skips.length - 1 - i];
        if (skip.shape[0] !== h.shape[0] || skip.shape[2] !== h.shape[2] || skip.shape[3] !== h.shape[3]) {
          throw new ShapeError(`UpBlock2D: skip [${skip.shape}] does not match hidden state [${h.shape}] (batch/H/W)`);
        }
        h = tidy(() => {
          const ck = this.gradientCheckpointing;
          const y = resnetCall(ck, resnets.at(i), concat([h, skip], 1), embAct);
          return attns ? attnCall(ck, attns.at(i), y, context!) : y;
        });
      }
      if (this.hasUpsample) h = this.child<ModuleList<Upsample2D>>('upsamplers').at(0).forward(h);
      return h;
    });
  }
}

export { ResnetBlock2D, Downsample2D, Upsample2D, Transformer2DModel };
