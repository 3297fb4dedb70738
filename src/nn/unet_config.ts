// UNet2DConditionModel config (diffusers config.json), normalised to per-block lists.
import { LpoError } from '../errors.js';
import { readOptions } from '../tensor/ops/options.js';

/** The subset of diffusers' UNet2DConditionModel config this implementation understands (SD1.x / SD2.x). */
export interface UNet2DConditionConfigJson {
  in_channels?: number;
  out_channels?: number;
  down_block_types?: string[];
  up_block_types?: string[];
  mid_block_type?: string | null;
  block_out_channels?: number[];
  layers_per_block?: number | number[];
  downsample_padding?: number;
  mid_block_scale_factor?: number;
  act_fn?: string;
  norm_num_groups?: number;
  norm_eps?: number;
  cross_attention_dim?: number | number[];
  transformer_layers_per_block?: number | number[];
  attention_head_dim?: number | number[];
  num_attention_heads?: number | number[] | null;
  use_linear_projection?: boolean;
  flip_sin_to_cos?: boolean;
  freq_shift?: number;
  only_cross_attention?: boolean | boolean[];
  upcast_attention?: boolean;
  conv_in_kernel?: number;
  conv_out_kernel?: number;
  time_embedding_type?: string;
  class_embed_type?: string | null;
  addition_embed_type?: string | null;
  encoder_hid_dim?: number | null;
  time_cond_proj_dim?: number | null;
  resnet_time_scale_shift?: string;
  center_input_sample?: boolean;
  sample_size?: number | number[];
  dual_cross_attention?: boolean;
  reverse_transformer_layers_per_block?: unknown;
  [k: string]: unknown;
}

/** Normalised config: every per-block option is a list of length `down_block_types.length`. */
export interface UNetConfig {
  inChannels: number;
  outChannels: number;
  downBlockTypes: string[];
  upBlockTypes: string[];
  midBlockType: string;
  blockOutChannels: number[];
  layersPerBlock: number[];
  downsamplePadding: number;
  midBlockScaleFactor: number;
  normNumGroups: number;
  normEps: number;
  crossAttentionDim: number[];
  transformerLayersPerBlock: number[];
  /** Number of attention heads per down block (diffusers' `num_attention_heads or attention_head_dim`). */
  numAttentionHeads: number[];
  useLinearProjection: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  centerInputSample: boolean;
  /** time_embedding.linear_* width (4 × block_out_channels[0]). */
  timeEmbedDim: number;
  /** Latent size the model was trained at (config `sample_size`; 64 for SD1.5), when the config gives one. */
  sampleSize?: number;
}

const DOWN = new Set(['CrossAttnDownBlock2D', 'DownBlock2D']);
const UP = new Set(['CrossAttnUpBlock2D', 'UpBlock2D']);

function perBlock<T>(v: T | T[] | undefined | null, n: number, dflt: T, what: string): T[] {
  if (v === undefined || v === null) return new Array<T>(n).fill(dflt);
  if (Array.isArray(v)) {
    if (v.length !== n) throw new LpoError(`UNet config: ${what} has ${v.length} entries for ${n} down blocks`);
    return [...v];
  }
  return new Array<T>(n).fill(v);
}

/** Reads a diffusers config (the parsed config.json) into a UNetConfig; rejects options not implemented. */
export function parseUNetConfig(json: UNet2DConditionConfigJson): UNetConfig {
  const downBlockTypes = json.down_block_types ?? ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'];
  const upBlockTypes = json.up_block_types ?? ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'];
  const n = downBlockTypes.length;
  if (upBlockTypes.length !== n) throw new LpoError(`UNet config: ${n} down blocks but ${upBlockTypes.length} up blocks`);
  for (const t of downBlockTypes) if (!DOWN.has(t)) throw new LpoError(`UNet config: down block type '${t}' is not supported (only ${[...DOWN].join(', ')})`);
  for (const t of upBlockTypes) if (!UP.has(t)) throw new LpoError(`UNet config: up block type '${t}' is not supported (only ${[...UP].join(', ')})`);
  const midBlockType = json.mid_block_type === undefined ? 'UNetMidBlock2DCrossAttn' : json.mid_block_type;
  if (midBlockType !== 'UNetMidBlock2DCrossAttn') throw new LpoError(`UNet config: mid_block_type '${midBlockType}' is not supported`);
  const blockOutChannels = json.block_out_channels ?? [320, 640, 1280, 1280];
  if (blockOutChannels.length !== n) throw new LpoError(`UNet config: block_out_channels has ${blockOutChannels.length} entries for ${n} down blocks`);

  const unsupported: [string, boolean][] = [
    ['act_fn', (json.act_fn ?? 'silu') !== 'silu'],
    ['time_embedding_type', (json.time_embedding_type ?? 'positional') !== 'positional'],
    ['class_embed_type', json.class_embed_type != null],
    ['addition_embed_type', json.addition_embed_type != null],
    ['encoder_hid_dim', json.encoder_hid_dim != null],
    ['time_cond_proj_dim', json.time_cond_proj_dim != null],
    ['resnet_time_scale_shift', (json.resnet_time_scale_shift ?? 'default') !== 'default'],
    ['dual_cross_attention', !!json.dual_cross_attention],
    ['only_cross_attention', Array.isArray(json.only_cross_attention) ? json.only_cross_attention.some(Boolean) : !!json.only_cross_attention],
    ['conv_in_kernel', (json.conv_in_kernel ?? 3) !== 3],
    ['conv_out_kernel', (json.conv_out_kernel ?? 3) !== 3],
    ['reverse_transformer_layers_per_block', json.reverse_transformer_layers_per_block != null],
  ];
  for (const [k, bad] of unsupported) if (bad) throw new LpoError(`UNet config: ${k} = ${JSON.stringify(json[k])} is not supported`);

  // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (attention_head_dim is the head COUNT).
  const heads = perBlock(json.num_attention_heads ?? json.attention_head_dim ?? 8, n, 8, 'attention_head_dim');
  const cfg: UNetConfig = {
    inChannels: json.in_channels ?? 4,
    outChannels: json.out_channels ?? 4,
    downBlockTypes,
    upBlockTypes,
    midBlockType,
    blockOutChannels,
    layersPerBlock: perBlock(json.layers_per_block, n, 2, 'layers_per_block'),
    downsamplePadding: json.downsample_padding ?? 1,
    midBlockScaleFactor: json.mid_block_scale_factor ?? 1,
    normNumGroups: json.norm_num_groups ?? 32,
    normEps: json.norm_eps ?? 1e-5,
    crossAttentionDim: perBlock(json.cross_attention_dim, n, 1280, 'cross_attention_dim'),
    transformerLayersPerBlock: perBlock(json.transformer_layers_per_block, n, 1, 'transformer_layers_per_block'),
    numAttentionHeads: heads,
    useLinearProjection: json.use_linear_projection ?? false,
    flipSinToCos: json.flip_sin_to_cos ?? true,
    freqShift: json.freq_shift ?? 0,
    centerInputSample: json.center_input_sample ?? false,
    timeEmbedDim: blockOutChannels[0] * 4,
  };
  const ss = Array.isArray(json.sample_size) ? json.sample_size[0] : json.sample_size;
  if (typeof ss === 'number') cfg.sampleSize = ss;
  blockOutChannels.forEach((c, i) => {
    if (c % cfg.normNumGroups) throw new LpoError(`UNet config: block_out_channels[${i}] = ${c} is not a multiple of norm_num_groups ${cfg.normNumGroups}`);
    if (c % heads[i]) throw new LpoError(`UNet config: block_out_channels[${i}] = ${c} is not a multiple of its ${heads[i]} attention heads`);
  });
  return cfg;
}

/** A UNetConfig as diffusers' config.json (parseUNetConfig reads it back to an equal config). */
export function unetConfigToJson(c: UNetConfig): UNet2DConditionConfigJson {
  // A per-block list whose entries are all equal is written as one number, as diffusers' own configs do.
  const one = (xs: readonly number[]): number | number[] => (xs.every((x) => x === xs[0]) ? xs[0] : [...xs]);
  return {
    _class_name: 'UNet2DConditionModel',
    in_channels: c.inChannels,
    out_channels: c.outChannels,
    down_block_types: [...c.downBlockTypes],
    up_block_types: [...c.upBlockTypes],
    mid_block_type: c.midBlockType,
    block_out_channels: [...c.blockOutChannels],
    layers_per_block: one(c.layersPerBlock),
    downsample_padding: c.downsamplePadding,
    mid_block_scale_factor: c.midBlockScaleFactor,
    act_fn: 'silu',
    norm_num_groups: c.normNumGroups,
    norm_eps: c.normEps,
    cross_attention_dim: one(c.crossAttentionDim),
    transformer_layers_per_block: one(c.transformerLayersPerBlock),
    // diffusers reads the head count from num_attention_heads, else from attention_head_dim (SD1.x's naming).
    attention_head_dim: one(c.numAttentionHeads),
    use_linear_projection: c.useLinearProjection,
    flip_sin_to_cos: c.flipSinToCos,
    freq_shift: c.freqShift,
    center_input_sample: c.centerInputSample,
    ...(c.sampleSize !== undefined ? { sample_size: c.sampleSize } : {}),
  };
}

/** SD1.5's UNet config (runwayml/stable-diffusion-v1-5 unet/config.json). */
export const SD15_UNET_CONFIG: UNet2DConditionConfigJson = {
  in_channels: 4,
  out_channels: 4,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  act_fn: 'silu',
  norm_num_groups: 32,
  norm_eps: 1e-5,
  cross_attention_dim: 768,
  attention_head_dim: 8,
  use_linear_projection: false,
  flip_sin_to_cos: true,
  freq_shift: 0,
  sample_size: 64,
};

/** timestepEmbedding's options (diffusers' Timesteps / get_timestep_embedding arguments). */
export interface TimestepEmbeddingOptions {
  /** cos first, then sin; default true (SD's config.json flip_sin_to_cos). */
  flipSinToCos?: boolean;
  /** diffusers' freq_shift (downscale_freq_shift); default 0. */
  freqShift?: number;
  /** default 10000. */
  maxPeriod?: number;
}
const TIMESTEP_SPEC = { flipSinToCos: 'boolean', freqShift: 'number', maxPeriod: 'number' } as const;

/**
 * diffusers' Timesteps(dim, flip_sin_to_cos, freq_shift) on the host: [B, dim] as a flat Float32Array.
 * The frequencies and the products t·f are rounded to float32 exactly as torch computes them in float32
 * (so the sin/cos arguments match), and sin/cos are evaluated in float64 (GPU sin is not accurate enough
 * for arguments up to 1000).
 */
export function timestepEmbedding(timesteps: readonly number[], dim: number, opts: TimestepEmbeddingOptions = {}): Float32Array {
  const { flipSinToCos = true, freqShift = 0, maxPeriod = 10000 } = readOptions('timestepEmbedding', opts, TIMESTEP_SPEC);
  const half = Math.floor(dim / 2);
  const f32 = Math.fround;
  const lnMax = f32(-Math.log(maxPeriod));
  const denom = f32(half - freqShift);
  const freqs = new Float64Array(half);
  for (let i = 0; i < half; i++) freqs[i] = f32(Math.exp(f32(f32(lnMax * i) / denom)));
  const out = new Float32Array(timesteps.length * dim);
  timesteps.forEach((t, b) => {
    const tf = f32(t);
    for (let i = 0; i < half; i++) {
      const arg = f32(tf * freqs[i]);
      const s = Math.sin(arg);
      const c = Math.cos(arg);
      out[b * dim + i] = flipSinToCos ? c : s;
      out[b * dim + half + i] = flipSinToCos ? s : c;
    }
  });
  return out;
}
