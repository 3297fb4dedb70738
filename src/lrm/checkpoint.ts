// LRM training checkpoints: one folder per step in a CheckpointStore (src/io/checkpoint: temporary folder, fsync,
// hashed manifest, rename; verified on load; newest N kept), holding everything resume needs to continue exactly:
//
//   model.safetensors      every parameter of the LRM (truncated U-Net, text encoder, projections, τ)
//   optimizer.safetensors  `<parameter>.exp_avg` / `.exp_avg_sq` of the trainable ones; step counts in __metadata__
//   state.json             step, the three random streams (timesteps, noise, VAE), the data position, the best so far
//
// The learning-rate schedule is a function of the step, so the step restores it.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError } from '../errors.js';
import type { CheckpointStore } from '../io/checkpoint/index.js';
import { loadWeights, saveWeights } from '../io/pretrained.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import type { AdamW } from '../optim/adamw.js';
import { adamwStateToHost, restoreAdamwState } from '../optim/state.js';
import type { Tensor } from '../tensor/tensor.js';
import type { PairDrawsState } from './batch.js';
import type { LatentRewardModel } from './model.js';

export const LRM_CHECKPOINT_VERSION = 1;

/** Where the endless pair stream is: the pass (its shuffle is seed + epoch) and the rows already taken from it. */
export interface StreamPosition { epoch: number; consumed: number }

export interface LrmTrainState {
  version: number;
  /** Optimizer steps completed. */
  step: number;
  seed: number;
  draws: PairDrawsState;
  data: StreamPosition;
  /** The best validation so far (its record), or null. */
  best: Record<string, unknown> | null;
}

/** The trainable parameters with their state-dict names, in the optimizer's order. */
function namedTrainable(model: LatentRewardModel, opt: AdamW): [string, Tensor][] {
  const byTensor = new Map<Tensor, string>();
  for (const [k, t] of model.stateDict()) byTensor.set(t, k);
  return opt.params.map((p) => [byTensor.get(p) ?? '', p] as [string, Tensor]).filter(([k]) => k !== '');
}

export async function saveLrmCheckpoint(store: CheckpointStore, model: LatentRewardModel, opt: AdamW, state: LrmTrainState): Promise<string> {
  return store.save(state.step, async (tmp) => {
    await saveWeights(model, join(tmp, 'model.safetensors'));
    const { tensors, steps } = await adamwStateToHost(opt, namedTrainable(model, opt));
    const out: Record<string, TensorToWrite> = {};
    for (const [k, t] of Object.entries(tensors)) out[k] = { dtype: 'F32', shape: t.shape, data: t.data };
    await writeSafetensors(join(tmp, 'optimizer.safetensors'), out, { format: 'lpo-adamw', steps: JSON.stringify(steps) });
    writeFileSync(join(tmp, 'state.json'), `${JSON.stringify(state)}\n`);
  }, { step: state.step });
}

function readState(dir: string): LrmTrainState {
  const file = join(dir, 'state.json');
  let s: unknown;
  try {
    s = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FileFormatError(file, `cannot be read as JSON: ${(e as Error).message}`);
  }
  const o = s as Partial<LrmTrainState> | null;
  if (!o || typeof o !== 'object' || o.version !== LRM_CHECKPOINT_VERSION) throw new FileFormatError(file, `not an LRM training state of version ${LRM_CHECKPOINT_VERSION}`);
  const nonNeg = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  if (!nonNeg(o.step) || !nonNeg(o.seed) || !o.data || !nonNeg(o.data.epoch) || !nonNeg(o.data.consumed) || !o.draws) {
    throw new FileFormatError(file, "'step', 'seed', 'data' {epoch, consumed} and 'draws' are required");
  }
  return o as LrmTrainState;
}

/** Loads a verified checkpoint folder into the model and its AdamW; returns the trainer state. */
export async function loadLrmCheckpoint(dir: string, model: LatentRewardModel, opt: AdamW): Promise<LrmTrainState> {
  const state = readState(dir);
  await loadWeights(model, join(dir, 'model.safetensors'));
  const file = join(dir, 'optimizer.safetensors');
  const f = SafetensorsFile.openSync(file);
  try {
    restoreAdamwState(opt, namedTrainable(model, opt), f, file);
  } finally {
    f.closeSync();
  }
  return state;
}
