// AutoencoderKL config (diffusers config.json) and the VAE's checkpoint key names.
import { LpoError } from '../errors.js';

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

/** A VAEConfig as diffusers' config.json (parseVAEConfig reads it back to an equal config). */
export function vaeConfigToJson(c: VAEConfig): AutoencoderKLConfigJson {
  return {
    _class_name: 'AutoencoderKL',
    in_channels: c.inChannels,
    out_channels: c.outChannels,
    down_block_types: c.blockOutChannels.map(() => 'DownEncoderBlock2D'),
    up_block_types: c.blockOutChannels.map(() => 'UpDecoderBlock2D'),
    block_out_channels: [...c.blockOutChannels],
    layers_per_block: c.layersPerBlock,
    act_fn: 'silu',
    latent_channels: c.latentChannels,
    norm_num_groups: c.normNumGroups,
    scaling_factor: c.scalingFactor,
    mid_block_add_attention: c.midBlockAddAttention,
    use_quant_conv: c.useQuantConv,
    use_post_quant_conv: c.usePostQuantConv,
  };
}

const LEGACY_ATTENTION = /^(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$/;
const LEGACY_NAMES: Record<string, string> = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' };

/** Old diffusers VAE attention names (query/key/value/proj_attn) → current ones (to_q/to_k/to_v/to_out.0). */
export function vaeLegacyRename(key: string): string {
  const m = LEGACY_ATTENTION.exec(key);
  return m ? `${m[1]}.${LEGACY_NAMES[m[2]]}.${m[3]}` : key;
}
