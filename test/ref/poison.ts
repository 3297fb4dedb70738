// Leaves NaN-filled buffers of these shapes in the pool (LIFO per size class), so the next outputs
// of that size start poisoned and a missed write shows as a non-finite value.
import { Tensor, numel } from '../../src/tensor/tensor.js';

export function poison(...shapes: (readonly number[])[]): void {
  const ts = shapes.flatMap((s) => [0, 1, 2].map(() => Tensor.fromArray(new Float32Array(numel(s)).fill(NaN), s)));
  ts.forEach((t) => t.dispose());
}

export const allFinite = (a: Float32Array): boolean => a.every((v) => Number.isFinite(v));
