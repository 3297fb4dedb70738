// Trainer checkpoints: one folder per iteration in a CheckpointStore (src/io/checkpoint: written to a temporary
// folder, fsynced, hashed into manifest.json, renamed into place; verified on load; the newest few kept), holding
//
//   lora.safetensors       the adapters (src/io/lora.ts format)
//   optimizer.safetensors  `<lora key>.exp_avg` / `.exp_avg_sq` per factor; step counts in __metadata__
//   state.json             iteration, data position, seed, optimizer steps, the run's config
//
// The trainer's randomness is derived from (seed, iteration) (prompts.ts derivedGenerator), so the seed and the
// iteration are its whole RNG state: resuming reproduces the uninterrupted run exactly.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError, LpoError } from '../errors.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { CheckpointStore, MANIFEST_FILE, verifyCheckpoint } from '../io/checkpoint/index.js';
import { loraLayers } from '../nn/lora.js';
import { loadLoRA, loraKey, saveLoRA } from '../io/lora.js';
import type { Module } from '../nn/module.js';
import type { AdamW } from '../optim/adamw.js';
import { adamwStateToHost, restoreAdamwState } from '../optim/state.js';
import type { Tensor } from '../tensor/tensor.js';
import type { DataPosition } from './prompts.js';

export const CHECKPOINT_VERSION = 1;

export interface TrainerState {
  version: number;
  algo: 'lpo' | 'grpo';
  /** Iterations completed (the next one to run has this index). */
  iteration: number;
  /** Where the next iteration's prompts come from. */
  position: DataPosition;
  optimizerSteps: number;
  seed: number;
  /** How the RNG state is kept: 'derived(seed, iteration)'. */
  rng: string;
  /** The run's settings that must match on resume (see trainer.ts resumeKey). */
  config: Record<string, unknown>;
  /** Number of prompts in the prompt file (a different file cannot continue the same schedule). */
  numPrompts: number;
}

/** The factors with their file keys, in the optimizer's parameter order. */
function namedFactors(model: Module): [string, Tensor][] {
  return loraLayers(model).flatMap(([p, l]) => [[loraKey(p, 'A'), l.loraA], [loraKey(p, 'B'), l.loraB]] as [string, Tensor][]);
}

/** Saves a checkpoint of `state.iteration` into the store; returns its folder. */
export async function saveCheckpoint(store: CheckpointStore, model: Module, optimizer: AdamW, state: TrainerState): Promise<string> {
  return store.save(state.iteration, async (tmp) => {
    await saveLoRA(model, join(tmp, 'lora.safetensors'));
    const { tensors, steps } = await adamwStateToHost(optimizer, namedFactors(model));
    const out: Record<string, TensorToWrite> = {};
    for (const [k, t] of Object.entries(tensors)) out[k] = { dtype: 'F32', shape: t.shape, data: t.data };
    await writeSafetensors(join(tmp, 'optimizer.safetensors'), out, { format: 'lpo-adamw', steps: JSON.stringify(steps) });
    writeFileSync(join(tmp, 'state.json'), `${JSON.stringify(state, null, 1)}\n`);
  }, { algo: state.algo, iteration: state.iteration });
}

/**
 * The checkpoint folder to resume from: `path` itself when it is one checkpoint (its manifest is verified), else
 * the newest checkpoint of the store rooted at `path` that verifies (corrupted newer ones are reported to `warn`).
 */
export function resolveCheckpoint(path: string, warn: (msg: string) => void = () => {}): string {
  if (!existsSync(path)) throw new LpoError(`resume: ${path} does not exist`);
  if (existsSync(join(path, MANIFEST_FILE))) {
    verifyCheckpoint(path);
    return path;
  }
  const c = new CheckpointStore(path).latest((dir, e) => warn(`checkpoint ${dir} is corrupted (${e.message}); trying an older one`));
  if (!c) throw new LpoError(`resume: no complete checkpoint in ${path}`);
  return c.dir;
}

export function readTrainerState(dir: string): TrainerState {
  const file = join(dir, 'state.json');
  if (!existsSync(file)) throw new FileFormatError(file, 'is missing: not a trainer checkpoint folder');
  let s: TrainerState;
  try {
    s = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FileFormatError(file, `is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new FileFormatError(file, 'is not a JSON object');
  if (s.version !== CHECKPOINT_VERSION) throw new FileFormatError(file, `checkpoint version ${s.version}, this build reads ${CHECKPOINT_VERSION}`);
  for (const k of ['iteration', 'optimizerSteps', 'seed', 'numPrompts'] as const) {
    if (!Number.isInteger(s[k]) || s[k] < 0) throw new FileFormatError(file, `'${k}' must be a non-negative integer`);
  }
  if (!s.position || !Number.isInteger(s.position.epoch) || !Number.isInteger(s.position.batch)) throw new FileFormatError(file, "'position' must be { epoch, batch }");
  return s;
}

/** Loads the LoRA and the optimizer state of a checkpoint into an adapted model and its AdamW; returns the state. */
export async function loadCheckpoint(dir: string, model: Module, optimizer: AdamW): Promise<TrainerState> {
  const state = readTrainerState(dir);
  await loadLoRA(model, join(dir, 'lora.safetensors'));
  const file = join(dir, 'optimizer.safetensors');
  const f = SafetensorsFile.openSync(file);
  try {
    restoreAdamwState(optimizer, namedFactors(model), f, file);
  } finally {
    f.closeSync();
  }
  return state;
}
