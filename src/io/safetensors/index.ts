// safetensors reader and writer (https://github.com/huggingface/safetensors): the public API of this folder.
export { SafetensorsError } from './error.js';
export { DTYPE_SIZES, type SafetensorsDType } from './dtypes.js';
export { MAX_HEADER_BYTES, parseSafetensorsHeader, type TensorInfo, type SafetensorsHeader } from './header.js';
export { decodeF32, decodeInt32 } from './decode.js';
export { SafetensorsFile, readSafetensors, readSafetensorsSync, type HostTensor, type ReadTensorOptions } from './file.js';
export { encodeTensor, type TensorToWrite, type WritableDType } from './encode.js';
export { serializeSafetensors, writeSafetensors, writeSafetensorsSync } from './write.js';
