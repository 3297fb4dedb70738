// The LRM's U-Net: conv_in, time embedding, down blocks and mid block only (LPO-SPEC §1.1). The up path is never
// built; a full diffusers checkpoint loads into it because the truncated U-Net declares its up-path keys
// (up_blocks.*, conv_norm_out.*, conv_out.*) as accepted-and-skipped by name (UNet2DConditionModel.checkpointKeys).
import { gpu } from '../gpu/runtime.js';
import { withoutInit } from '../nn/init.js';
import { UNet2DConditionModel, type UNet2DConditionConfigJson } from '../nn/unet.js';
import { fromPretrained, type FromPretrainedOptions, type ModelClass } from '../io/pretrained.js';

/** The model class loaders build for the LRM: a UNet2DConditionModel with `upBlocks: false`. */
export const TruncatedUNet: ModelClass<UNet2DConditionModel> = {
  className: 'UNet2DConditionModel',
  fromConfig: (config) => new UNet2DConditionModel(config as UNet2DConditionConfigJson, { upBlocks: false }),
};

/** A diffusers `unet` folder (or a truncated one an LRM saved) loaded into a truncated U-Net, strictly otherwise. */
export function loadTruncatedUNet(dir: string, opts?: FromPretrainedOptions): Promise<UNet2DConditionModel> {
  return fromPretrained(TruncatedUNet, dir, opts);
}

/** A truncated U-Net holding copies of a full one's down/mid weights (the full one is left as it is). */
export function truncatedCopy(full: UNet2DConditionModel): UNet2DConditionModel {
  const t = withoutInit(() => new UNet2DConditionModel(full.config, { upBlocks: false }));
  const src = full.stateDict();
  for (const [k, p] of t.stateDict()) {
    const s = src.get(k)!; // same config, so every truncated parameter exists in the full model
    gpu().copy(s.buffer, 0, p.buffer, 0, p.bytes);
  }
  return t;
}
