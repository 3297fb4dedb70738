// `lpo-wgsl/io`: files. Safetensors (strict, streaming), the CLIP BPE tokenizer, PNG images, diffusers model
// folders and weights, preference-pair datasets (folders, Pick-a-Pic parquet), training checkpoints.
/// <reference types="@webgpu/types" preserve="true" />

export {
  SafetensorsFile, SafetensorsError, readSafetensors, readSafetensorsSync, writeSafetensors, writeSafetensorsSync, serializeSafetensors,
  type SafetensorsDType, type TensorInfo, type HostTensor, type ReadTensorOptions, type TensorToWrite, type WritableDType,
} from '../io/safetensors.js';
export { CLIPTokenizer, TokenizerError } from '../io/tokenizer.js';
export { readPng, writePng, writePngTensor, decodePng, encodePng, ImageError, type DecodedImage, type ImageLayout, type ImageOptions } from '../io/image.js';
export { openDiffusersModel, type DiffusersModel, type Component, type OpenModelOptions } from '../io/diffusers.js';
export { openWeights, DiffusersError, type WeightsReader } from '../io/weights.js';
// A module's weights to and from one file (whole models: Model.fromPretrained / model.savePretrained).
export { loadWeights, saveWeights, type FromPretrainedOptions } from '../io/pretrained.js';

export {
  openPairs, openPairFolder, openParquetPairs, memoryPairs, writePairFolder, PairFolderWriter, PairDataError, inspectPairs, formatPairStats,
  type PairDataset, type PairRow, type PairMeta, type PairGaps, type PairSplit, type OpenPairsOptions, type MemoryPair, type PairToWrite, type PairStats,
} from '../io/pairs/index.js';
export { CheckpointStore, CheckpointError, type CheckpointStoreOptions, type CheckpointInfo, type LoadedCheckpoint } from '../io/checkpoint/index.js';
