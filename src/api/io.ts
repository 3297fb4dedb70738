// `lpo-wgsl/io`: files. Safetensors (strict, streaming), the CLIP BPE tokenizer, PNG images, diffusers model
// folders and weights, and (as they land) the preference-pair datasets of src/io/pairs.
/// <reference types="@webgpu/types" preserve="true" />

export {
  SafetensorsFile, SafetensorsError, readSafetensors, readSafetensorsSync, writeSafetensors, writeSafetensorsSync, serializeSafetensors,
  type SafetensorsDType, type TensorInfo, type HostTensor, type ReadTensorOptions, type TensorToWrite, type WritableDType,
} from '../io/safetensors.js';
export { CLIPTokenizer, TokenizerError } from '../io/tokenizer.js';
export { readPng, writePng, writePngTensor, decodePng, encodePng, ImageError, type DecodedImage, type ImageLayout, type ImageOptions } from '../io/image.js';
export { openDiffusersModel, type DiffusersModel, type Component, type OpenModelOptions } from '../io/diffusers.js';
export { openWeights, DiffusersError, type WeightsReader } from '../io/weights.js';

// Preference-pair datasets (src/io/pairs): add `export { … } from '../io/pairs/….js';` here as they land.
