// Every reader's fuzz target, in the order the fuzz test and `npm run fuzz` run them.
import type { FuzzTarget } from './fuzz-harness.js';
import { checkpointTarget, configTarget, loraTarget, modelConfigTarget, safetensorsTarget, trainerStateTarget } from './fuzz-files.js';
import { imageTarget, pairsTarget, parquetTarget, promptsTarget, tokenizerTarget } from './fuzz-data.js';

export const FUZZ_TARGETS: readonly FuzzTarget[] = [
  safetensorsTarget, configTarget, modelConfigTarget, parquetTarget, imageTarget, pairsTarget, promptsTarget, tokenizerTarget, loraTarget, checkpointTarget, trainerStateTarget,
];
