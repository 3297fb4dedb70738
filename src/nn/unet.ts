// diffusers' UNet2DConditionModel (SD1.x / SD2.x layout) built from its config.json, with diffusers' key names.
import { LpoError, ShapeError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { affine, silu } from '../tensor/ops/elementwise.js';
import { Conv2d, GroupNorm, Linear, Module, ModuleList, type Projection } from './layers.js';
import type { CheckpointKeys } from './state_dict.js';
import { PretrainedModel } from './pretrained.js';
import { DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D } from './unet_blocks.js';
import { parseUNetConfig, timestepEmbedding, unetConfigToJson, type UNet2DConditionConfigJson, type UNetConfig } from './unet_config.js';
import { projectAct } from './fused.js';

export { parseUNetConfig, unetConfigToJson, timestepEmbedding, SD15_UNET_CONFIG, type TimestepEmbeddingOptions, type UNet2DConditionConfigJson, type UNetConfig } from './unet_config.js';

/** tidy() for a function returning an object of tensors (interfaces lack tidy's index signature). */
function tidyObject<T>(fn: () => T): T {
  return tidy(fn as unknown as () => Tensor) as unknown as T;
}

/** time_embedding: linear_1 → SiLU → linear_2. */
export class TimestepEmbedding extends Module {
  constructor(readonly inChannels: number, readonly timeEmbedDim: number, gen?: Generator) {
    super();
    this.registerModule('linear_1', new Linear(inChannels, timeEmbedDim, { gen }));
    this.registerModule('linear_2', new Linear(timeEmbedDim, timeEmbedDim, { gen }));
  }

  /** linear_2(SiLU(linear_1(x))), then `activation` (the U-Net's resnets take SiLU(temb)); activations fused where the layers allow. */
  forward(x: Tensor, opts: { activation?: 'silu' } = {}): Tensor {
    return tidy(() => {
      const h = projectAct(this.child<Projection>('linear_1'), x, 'silu');
      const l2 = this.child<Projection>('linear_2');
      return opts.activation ? projectAct(l2, h, opts.activation) : l2.forward(h);
    });
  }
}

export interface UNetForwardOptions {
  /** Also return the skip tuple, every block's output and the debug taps. */
  returnFeatures?: boolean;
  /** Stop after the mid block (the LRM's truncated U-Net): no up path, no `sample`. */
  stopAfterMid?: boolean;
}

export interface UNetDebug {
  conv_in: Tensor;
  /** The sinusoidal embedding [B, C0] (uploaded from the host). */
  time_proj: Tensor;
  /** time_embedding output [B, 4·C0] (before the resnets' SiLU). */
  time_embedding: Tensor;
}

export interface UNetMidOutput {
  /**
   * diffusers' down_block_res_samples: conv_in's output, then each down block's per-layer outputs and its
   * downsampler output. Entry b·(L+1)+L is the end of stage b (before its downsampler).
   */
  downBlockResSamples: Tensor[];
  /** Each down block's main output (after its downsampler, if any). */
  downBlocks: Tensor[];
  mid: Tensor;
  debug?: UNetDebug;
}

export interface UNetOutput extends Partial<UNetMidOutput> {
  /** The noise prediction [B, outChannels, H, W]. */
  sample: Tensor;
  upBlocks?: Tensor[];
}

/** Indices of down_block_res_samples that end a down stage (before its downsampler): the LRM's features. */
export function stageEndIndices(layersPerBlock: readonly number[]): number[] {
  const out: number[] = [];
  let acc = 0;
  layersPerBlock.forEach((l, b) => {
    acc += l;
    out.push(acc + b);
  });
  return out;
}

export class UNet2DConditionModel extends PretrainedModel {
  readonly config: UNetConfig;

  /** False when built with `upBlocks: false` (the LRM's truncated U-Net: conv_in, time embedding, down and mid blocks). */
  readonly hasUpBlocks: boolean;

  /**
   * Builds the model with random (torch-default-like) weights; load real ones with fromPretrained or loadStateDict.
   * `upBlocks: false` leaves out up_blocks, conv_norm_out and conv_out (never allocated): only
   * `forward(..., { stopAfterMid: true })` works then.
   */
  constructor(config: UNet2DConditionConfigJson | UNetConfig, opts: { gen?: Generator; upBlocks?: boolean } = {}) {
    super();
    const c = 'blockOutChannels' in config ? (config as UNetConfig) : parseUNetConfig(config as UNet2DConditionConfigJson);
    this.config = c;
    this.hasUpBlocks = opts.upBlocks ?? true;
    const gen = opts.gen;
    const nb = c.blockOutChannels.length;
    const c0 = c.blockOutChannels[0];
    const temb = c.timeEmbedDim;
    this.registerModule('conv_in', new Conv2d(c.inChannels, c0, 3, { padding: 1, gen }));
    this.registerModule('time_embedding', new TimestepEmbedding(c0, temb, gen));

    const down = new ModuleList<DownBlock2D>();
    let outCh = c0;
    for (let i = 0; i < nb; i++) {
      const inCh = outCh;
      outCh = c.blockOutChannels[i];
      const cross = c.downBlockTypes[i] === 'CrossAttnDownBlock2D'
        ? { heads: c.numAttentionHeads[i], crossAttentionDim: c.crossAttentionDim[i], transformerLayers: c.transformerLayersPerBlock[i], useLinearProjection: c.useLinearProjection }
        : undefined;
      down.append(new DownBlock2D({
        numLayers: c.layersPerBlock[i], inChannels: inCh, outChannels: outCh, tembChannels: temb, eps: c.normEps, groups: c.normNumGroups,
        addDownsample: i < nb - 1, downsamplePadding: c.downsamplePadding, gen,
      }, cross));
    }
    this.registerModule('down_blocks', down);

    const last = c.blockOutChannels[nb - 1];
    this.registerModule('mid_block', new UNetMidBlock2DCrossAttn(
      { numLayers: 1, inChannels: last, tembChannels: temb, eps: c.normEps, groups: c.normNumGroups, outputScaleFactor: c.midBlockScaleFactor, gen },
      { heads: c.numAttentionHeads[nb - 1], crossAttentionDim: c.crossAttentionDim[nb - 1], transformerLayers: c.transformerLayersPerBlock[nb - 1], useLinearProjection: c.useLinearProjection },
    ));

    if (!this.hasUpBlocks) return;
    const rev = [...c.blockOutChannels].reverse();
    const revHeads = [...c.numAttentionHeads].reverse();
    const revLayers = [...c.layersPerBlock].reverse();
    const revCross = [...c.crossAttentionDim].reverse();
    const revTl = [...c.transformerLayersPerBlock].reverse();
    const up = new ModuleList<UpBlock2D>();
    outCh = rev[0];
    for (let i = 0; i < nb; i++) {
      const prevOut = outCh;
      outCh = rev[i];
      const inCh = rev[Math.min(i + 1, nb - 1)];
      const cross = c.upBlockTypes[i] === 'CrossAttnUpBlock2D'
        ? { heads: revHeads[i], crossAttentionDim: revCross[i], transformerLayers: revTl[i], useLinearProjection: c.useLinearProjection }
        : undefined;
      up.append(new UpBlock2D({
        numLayers: revLayers[i] + 1, inChannels: inCh, prevOutputChannels: prevOut, outChannels: outCh, tembChannels: temb,
        eps: c.normEps, groups: c.normNumGroups, addUpsample: i < nb - 1, gen,
      }, cross));
    }
    this.registerModule('up_blocks', up);
    this.registerModule('conv_norm_out', new GroupNorm(c.normNumGroups, c0, { eps: c.normEps }));
    this.registerModule('conv_out', new Conv2d(c0, c.outChannels, 3, { padding: 1, gen }));
  }

  /**
   * diffusers' enable_gradient_checkpointing(): every resnet and transformer of the down, mid and up blocks
   * keeps only its inputs for backward and recomputes its activations there (training memory ∝ depth, not size).
   */
  enableGradientCheckpointing(on = true): this {
    for (const b of [...this.downBlocks, this.midBlock, ...(this.hasUpBlocks ? this.upBlocks : [])]) b.gradientCheckpointing = on;
    return this;
  }

  get gradientCheckpointing(): boolean {
    return this.midBlock.gradientCheckpointing;
  }

  get downBlocks(): ModuleList<DownBlock2D> { return this.child('down_blocks'); }
  get midBlock(): UNetMidBlock2DCrossAttn { return this.child('mid_block'); }
  get upBlocks(): ModuleList<UpBlock2D> { return this.child('up_blocks'); }

  /** Indices of downBlockResSamples that end each down stage (2, 5, 8, 11 for SD1.5). */
  get stageEndIndices(): number[] {
    return stageEndIndices(this.config.layersPerBlock);
  }

  /** The name config.json gives this class. */
  static readonly className = 'UNet2DConditionModel';

  /** Builds the model from a diffusers config.json object (what loaders call). */
  static fromConfig(config: Record<string, unknown>): UNet2DConditionModel {
    return new UNet2DConditionModel(config as UNet2DConditionConfigJson);
  }

  /** The config as diffusers' config.json. */
  toConfig(): Record<string, unknown> {
    return { ...unetConfigToJson(this.config) };
  }

  /** A truncated U-Net (upBlocks: false) accepts a full checkpoint and leaves its up path unread. */
  protected override checkpointKeys(): CheckpointKeys | null {
    return this.hasUpBlocks ? null : { ignore: (k) => /^(up_blocks|conv_norm_out|conv_out)\./.test(k) };
  }

  /**
   * sample [B, in, H, W], one timestep per batch item (a single number is broadcast), encoderHiddenStates
   * [B, L, crossAttentionDim]. Intermediates are freed; returned tensors belong to the caller.
   */
  forward(sample: Tensor, timesteps: readonly number[] | number, encoderHiddenStates: Tensor, opts: UNetForwardOptions & { stopAfterMid: true }): UNetMidOutput;
  forward(sample: Tensor, timesteps: readonly number[] | number, encoderHiddenStates: Tensor, opts?: UNetForwardOptions): UNetOutput;
  forward(sample: Tensor, timesteps: readonly number[] | number, encoderHiddenStates: Tensor, opts: UNetForwardOptions = {}): UNetOutput | UNetMidOutput {
    const c = this.config;
    const nb = c.blockOutChannels.length;
    if (sample.rank !== 4 || sample.shape[1] !== c.inChannels) {
      throw new ShapeError(`UNet2DConditionModel: sample must be [B, ${c.inChannels}, H, W], got [${sample.shape}]`);
    }
    const [B, , H, W] = sample.shape;
    const f = 2 ** (nb - 1);
    if (H % f || W % f) throw new ShapeError(`UNet2DConditionModel: H and W must be multiples of ${f}, got ${H}x${W}`);
    const ctxDim = c.crossAttentionDim[0];
    if (encoderHiddenStates.rank !== 3 || encoderHiddenStates.shape[0] !== B || encoderHiddenStates.shape[2] !== ctxDim) {
      throw new ShapeError(`UNet2DConditionModel: encoderHiddenStates must be [${B}, L, ${ctxDim}], got [${encoderHiddenStates.shape}]`);
    }
    // One timestep per batch item; a single value (number or [t]) is used for every item.
    const ts = typeof timesteps === 'number' ? new Array<number>(B).fill(timesteps) : timesteps.length === 1 ? new Array<number>(B).fill(timesteps[0]) : [...timesteps];
    if (ts.length !== B) throw new ShapeError(`UNet2DConditionModel: ${ts.length} timesteps for batch ${B}`);
    const features = !!opts.returnFeatures;
    const toMid = !!opts.stopAfterMid;
    if (!toMid && !this.hasUpBlocks) throw new LpoError('UNet2DConditionModel: built without up blocks (upBlocks: false); call forward with { stopAfterMid: true }');

    return tidyObject(() => {
      const c0 = c.blockOutChannels[0];
      const tproj = Tensor.fromArray(timestepEmbedding(ts, c0, { flipSinToCos: c.flipSinToCos, freqShift: c.freqShift }), [B, c0]);
      // SiLU(temb) is what the resnets take; temb itself only for the debug taps.
      const te = this.child<TimestepEmbedding>('time_embedding');
      const emb = features ? te.forward(tproj) : null;
      const embAct = emb ? silu(emb) : te.forward(tproj, { activation: 'silu' });

      const x = c.centerInputSample ? affine(sample, { scale: 2, shift: -1 }) : sample;
      const h0 = this.child<Conv2d>('conv_in').forward(x);
      const res: Tensor[] = [h0];
      const downOuts: Tensor[] = [];
      let h = h0;
      for (const blk of this.downBlocks) {
        const o = blk.forward(h, embAct, blk.hasCrossAttention ? encoderHiddenStates : undefined);
        res.push(...o.states);
        downOuts.push(o.hidden);
        h = o.hidden;
      }
      const mid = this.midBlock.forward(h, embAct, encoderHiddenStates);
      const debug: UNetDebug | undefined = emb ? { conv_in: h0.retain(), time_proj: tproj, time_embedding: emb } : undefined;
      // Each returned entry is its own handle (shared storage is refcounted), so the caller may dispose each one.
      const midOut = (): UNetMidOutput => ({ downBlockResSamples: res, downBlocks: downOuts.map((t) => t.retain()), mid, ...(debug ? { debug } : {}) });
      if (toMid) return midOut();

      const ups: Tensor[] = [];
      let u = mid;
      let rest = res;
      for (const blk of this.upBlocks) {
        const skips = rest.slice(rest.length - blk.numLayers);
        rest = rest.slice(0, rest.length - blk.numLayers);
        const next = blk.forward(u, skips, embAct, blk.hasCrossAttention ? encoderHiddenStates : undefined);
        if (!features) {
          // Free what the up path no longer needs (the skips it consumed, the previous block's output).
          for (const s of skips) s.dispose();
          if (u !== mid) u.dispose();
        }
        u = next;
        ups.push(u);
      }
      const out = this.child<Conv2d>('conv_out').forward(this.child<GroupNorm>('conv_norm_out').forward(u, { activation: 'silu' }));
      if (!features) return { sample: out };
      return { sample: out, ...midOut(), mid: mid, upBlocks: ups };
    });
  }
}
