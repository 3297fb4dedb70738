// concat of two tensors runs as one launch (layout.concat2): every axis, f32 and i32 bits, a poisoned output
// buffer fully overwritten, and gradcheck of the two-input form.
import { describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero } from './helpers.js';
import { concatRef } from './ref/linalg.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor, numel } from '../src/tensor/tensor.js';
import { concat } from '../src/tensor/ops/layout.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { gpu } from '../src/gpu/runtime.js';

await setupGpu();

describe('concat of two tensors (one launch)', () => {
  it('matches the reference on every axis of ragged shapes, f32 and i32, over a poisoned buffer', async () => {
    const gen = new Generator(81);
    const base = [3, 5, 7];
    let launches = 0;
    const orig = gpu().dispatch.bind(gpu());
    gpu().dispatch = (d) => { if (d.kernel.name === 'layout.concat2') launches++; orig(d); };
    try {
      for (let axis = 0; axis < 3; axis++) {
        const shapes = [base, base.map((d, i) => (i === axis ? d + 2 : d))];
        const xs = shapes.map((s) => f32round(randNonZero(gen, numel(s))));
        const out = numel(shapes[0]) + numel(shapes[1]);
        Tensor.fromArray(new Float32Array(out).fill(NaN), [out]).dispose(); // the pool hands this buffer back
        const y = concat(xs.map((v, i) => Tensor.fromArray(v, shapes[i])), axis);
        const got = await y.toArray();
        expect(got.every(Number.isFinite)).toBe(true);
        expect(Array.from(got)).toEqual(Array.from(concatRef(xs, shapes, axis)));
        const ints = shapes.map((s, k) => Int32Array.from({ length: numel(s) }, (_, i) => i * 3 - k * 1000));
        const yi = concat(ints.map((v, i) => Tensor.fromArray(v, shapes[i], 'i32')), axis);
        expect(Array.from(await yi.toArray())).toEqual(Array.from(concatRef(ints.map((v) => Float64Array.from(v)), shapes, axis)));
        y.dispose();
        yi.dispose();
      }
    } finally {
      gpu().dispatch = orig;
    }
    expect(launches).toBe(6);
  });

  it('gradcheck', async () => {
    const gen = new Generator(82);
    const a = Tensor.fromArray(randNonZero(gen, 2 * 3 * 2), [2, 3, 2]);
    const b = Tensor.fromArray(randNonZero(gen, 2 * 1 * 2), [2, 1, 2]);
    const r = await gradcheck((x, y) => concat([x, y], 1), [a, b]);
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
  });
});
