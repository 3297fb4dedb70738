// Parameter initialisers shared by every layer, and the "no init" build mode of loaders.
//
// A model that is about to be loaded strictly (every parameter written from a checkpoint) gains nothing from
// its initial values: SD1.5's U-Net alone would draw ~860M random numbers on the host (~25 s) and upload
// 3.4 GB that the load overwrites. Under `withoutInit`, the initialisers only allocate GPU storage: no host
// arrays, no random draws, no upload. Only a loader that then writes every parameter (a strict load) may
// build under it, since the storage holds whatever the pool's buffer held before.
import { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../tensor/random.js';

let noInitDepth = 0;

/**
 * Runs `build` (a synchronous model construction) with parameter initialisation skipped: parameters are
 * allocated and left unwritten. For loaders that load every parameter strictly afterwards.
 */
export function withoutInit<T>(build: () => T): T {
  noInitDepth++;
  try {
    return build();
  } finally {
    noInitDepth--;
  }
}

/** True inside withoutInit. */
export function initSkipped(): boolean {
  return noInitDepth > 0;
}

/** U(low, high) from `gen` (uninitialised storage inside withoutInit). */
export function uniformParam(shape: readonly number[], low: number, high: number, gen: Generator): Tensor {
  return initSkipped() ? Tensor.empty(shape) : Tensor.rand(shape, gen, low, high);
}

/** N(0, std²) from `gen` (uninitialised storage inside withoutInit). */
export function normalParam(shape: readonly number[], std: number, gen: Generator): Tensor {
  return initSkipped() ? Tensor.empty(shape) : Tensor.randn(shape, gen, std);
}

/** Every element `value` (norm weights 1, biases 0; uninitialised storage inside withoutInit). */
export function constParam(shape: readonly number[], value: number): Tensor {
  if (initSkipped()) return Tensor.empty(shape);
  const t = Tensor.empty(shape);
  t.write(new Float32Array(t.size).fill(value));
  return t;
}
