// The Latent Reward Model's own settings (LPO-SPEC §1.2): VFE weight, which skip outputs are pooled, projection
// width, τ's initial value. Stored as the LRM folder's config.json (snake_case, as the reference code names them).
import { ArgumentError, FileFormatError } from '../errors.js';
import { stageEndIndices, type UNetConfig } from '../nn/unet.js';

export interface LrmConfig {
  /** VFE weight w (`guidance_scale`, 7.5). w = 1 runs no null pass at all. */
  vfeWeight: number;
  /** Entries of down_block_res_samples that are pooled, in concatenation order (SD1.5: 2, 5, 8, 11). */
  featureIndices: number[];
  /** Width of T and V (768 for LRM-1.5). */
  projectionDim: number;
  /** τ's value when the model is created: ln(1/0.07). */
  logitScaleInit: number;
  /** The VFE null prompt, encoded by the LRM's own text encoder (not zeros). */
  nullPrompt: string;
  /** Latent side length the model was trained at (the U-Net config's sample_size; 64 for SD1.5). */
  sampleSize: number;
  /** VAE latent scaling factor (0.18215 for SD1.5): latents = sample × this. */
  scalingFactor: number;
}

export const LOGIT_SCALE_INIT = 2.6592;

/** The defaults of LRM-1.5; featureIndices, projectionDim and sampleSize come from the models (lrmConfigFor). */
export const LRM_DEFAULTS = {
  vfeWeight: 7.5,
  logitScaleInit: LOGIT_SCALE_INIT,
  nullPrompt: '',
  sampleSize: 64,
  scalingFactor: 0.18215,
} as const;

/**
 * Channels of every down_block_res_samples entry: conv_in's output, then each down block's per-layer outputs and
 * its downsampler output (LPO-SPEC §1.1; the golden README's formula).
 */
export function resSampleChannels(unet: UNetConfig): number[] {
  const nb = unet.blockOutChannels.length;
  const out = [unet.blockOutChannels[0]];
  for (let b = 0; b < nb; b++) {
    for (let j = 0; j < unet.layersPerBlock[b]; j++) out.push(unet.blockOutChannels[b]);
    if (b < nb - 1) out.push(unet.blockOutChannels[b]);
  }
  return out;
}

/** Width of the concatenated visual feature: the pooled skip entries plus the mid block. */
export function visualInDim(unet: UNetConfig, featureIndices: readonly number[]): number {
  const ch = resSampleChannels(unet);
  const mid = unet.blockOutChannels[unet.blockOutChannels.length - 1];
  return featureIndices.reduce((s, i) => s + ch[i], 0) + mid;
}

/** Checks a config against the U-Net it will run on; throws ArgumentError naming the bad field. */
export function checkLrmConfig(c: LrmConfig, unet: UNetConfig): void {
  const n = resSampleChannels(unet).length;
  if (!c.featureIndices.length) throw new ArgumentError('LRM config: feature_indices is empty');
  for (const i of c.featureIndices) {
    if (!Number.isInteger(i) || i < 0 || i >= n) throw new ArgumentError(`LRM config: feature index ${i} is outside down_block_res_samples (0..${n - 1})`);
  }
  if (!(Number.isFinite(c.vfeWeight))) throw new ArgumentError(`LRM config: vfe_weight must be a number, got ${c.vfeWeight}`);
  if (!Number.isInteger(c.projectionDim) || c.projectionDim < 1) throw new ArgumentError(`LRM config: projection_dim must be a positive integer, got ${c.projectionDim}`);
  if (!Number.isFinite(c.logitScaleInit)) throw new ArgumentError(`LRM config: logit_scale_init must be a number, got ${c.logitScaleInit}`);
  const f = 2 ** (unet.blockOutChannels.length - 1);
  if (!Number.isInteger(c.sampleSize) || c.sampleSize < f || c.sampleSize % f) throw new ArgumentError(`LRM config: sample_size ${c.sampleSize} must be a positive multiple of ${f}`);
  if (!(c.scalingFactor > 0)) throw new ArgumentError(`LRM config: scaling_factor must be > 0, got ${c.scalingFactor}`);
}

/**
 * The full config for a U-Net and a text encoder of width `textWidth`: the defaults, the stage-end feature indices
 * of the U-Net's layout, its sample_size, projection width = text width (768 for SD1.5, as LRM-1.5), then `over`.
 */
export function lrmConfigFor(unet: UNetConfig, textWidth: number, over: Partial<LrmConfig> = {}): LrmConfig {
  const c: LrmConfig = {
    ...LRM_DEFAULTS,
    featureIndices: stageEndIndices(unet.layersPerBlock),
    projectionDim: textWidth,
    sampleSize: unet.sampleSize ?? LRM_DEFAULTS.sampleSize,
    ...over,
  };
  checkLrmConfig(c, unet);
  return c;
}

/** config.json of an LRM folder. */
export function lrmConfigToJson(c: LrmConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    _class_name: 'LatentRewardModel',
    vfe_weight: c.vfeWeight,
    feature_indices: [...c.featureIndices],
    projection_dim: c.projectionDim,
    logit_scale_init: c.logitScaleInit,
    null_prompt: c.nullPrompt,
    sample_size: c.sampleSize,
    scaling_factor: c.scalingFactor,
    ...extra,
  };
}

/** Reads an LRM folder's config.json object; `file` names it in errors. */
export function parseLrmConfig(json: Record<string, unknown>, file: string): LrmConfig {
  const num = (k: string, dflt?: number): number => {
    const v = json[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new FileFormatError(file, `'${k}' must be a number, got ${JSON.stringify(json[k])}`);
    return v;
  };
  if (json._class_name !== undefined && json._class_name !== 'LatentRewardModel') {
    throw new FileFormatError(file, `_class_name is ${JSON.stringify(json._class_name)}, not "LatentRewardModel"`);
  }
  const idx = json.feature_indices;
  if (!Array.isArray(idx) || !idx.every((i) => Number.isInteger(i))) throw new FileFormatError(file, `'feature_indices' must be a list of integers, got ${JSON.stringify(idx)}`);
  const nullPrompt = json.null_prompt ?? '';
  if (typeof nullPrompt !== 'string') throw new FileFormatError(file, `'null_prompt' must be a string`);
  return {
    vfeWeight: num('vfe_weight'),
    featureIndices: idx as number[],
    projectionDim: num('projection_dim'),
    logitScaleInit: num('logit_scale_init', LOGIT_SCALE_INIT),
    nullPrompt,
    sampleSize: num('sample_size', LRM_DEFAULTS.sampleSize),
    scalingFactor: num('scaling_factor', LRM_DEFAULTS.scalingFactor),
  };
}
