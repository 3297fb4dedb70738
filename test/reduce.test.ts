// Reductions over an axis (sum, mean, max), sumAll/meanAll and sumToShape, against float64.
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2, randNonZero, f32round } from './helpers.js';
import { allFinite, poison } from './ref/poison.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { max, mean, meanAll, sum, sumAll, sumToShape } from '../src/tensor/ops/reduce.js';
import { spatialMean } from '../src/tensor/ops/pool.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, requireGrad } from '../src/autograd/tape.js';

beforeAll(setupGpu);

const SHAPE = [3, 7, 5]; // ragged: no dimension is a multiple of anything the kernel tiles by

/** float64 reduction of x (row-major SHAPE) over `axis`. */
function reduceRef(x: Float64Array, shape: number[], axis: number, op: 'sum' | 'mean' | 'max'): Float64Array {
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const len = shape[axis];
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let acc = op === 'max' ? -Infinity : 0;
      for (let k = 0; k < len; k++) {
        const v = x[(o * len + k) * inner + i];
        acc = op === 'max' ? Math.max(acc, v) : acc + v;
      }
      out[o * inner + i] = op === 'mean' ? acc / len : acc;
    }
  }
  return out;
}

describe('reduce', () => {
  it('sum, mean and max over every axis match float64 (relL2 < 1e-6), every output written', async () => {
    const gen = new Generator(21);
    const xh = f32round(randNonZero(gen, 105, 0.1, 2));
    const x = Tensor.fromArray(xh, SHAPE);
    for (const op of ['sum', 'mean', 'max'] as const) {
      for (let axis = 0; axis < 3; axis++) {
        const outShape = SHAPE.filter((_, i) => i !== axis);
        poison(outShape);
        const f = op === 'sum' ? sum : op === 'mean' ? mean : max;
        const y = f(x, axis);
        expect(y.shape).toEqual(outShape);
        const got = await y.toArray();
        expect(allFinite(got), `${op} axis ${axis}`).toBe(true);
        expect(relL2(got, reduceRef(xh, SHAPE, axis, op)), `${op} axis ${axis}`).toBeLessThan(1e-6);
        const kept = f(x, axis - 3, true); // negative axis, keepDims
        expect(kept.shape).toEqual(SHAPE.map((d, i) => (i === axis ? 1 : d)));
        [y, kept].forEach((t) => t.dispose());
      }
    }
    const total = xh.reduce((a, b) => a + b, 0);
    expect(Math.abs((await sumAll(x).item()) - total) / Math.abs(total)).toBeLessThan(1e-6);
    expect(Math.abs((await meanAll(x).item()) - total / 105) / Math.abs(total / 105)).toBeLessThan(1e-6);
  });

  it('long axes stay accurate in f32 (compensated sum over 100,003 values)', async () => {
    const gen = new Generator(22);
    const xh = f32round(Float64Array.from({ length: 100_003 }, () => 0.5 + gen.uniform()));
    const ref = xh.reduce((a, b) => a + b, 0);
    let naive = 0;
    for (const v of xh) naive = Math.fround(naive + v);
    const got = await sum(Tensor.fromArray(xh, [100_003]), 0).item();
    // A plain f32 loop is off by ~1e-5 here; the compensated sum is within f32 rounding of the result.
    expect(Math.abs(naive - ref) / ref).toBeGreaterThan(1e-6);
    expect(Math.abs(got - ref) / ref).toBeLessThan(1.2e-7);
  });

  it('spatialMean (the LRM pooling) is compensated too: 98,587 pixels per plane', async () => {
    const gen = new Generator(26);
    const [C, H, W] = [3, 317, 311];
    const xh = f32round(Float64Array.from({ length: C * H * W }, () => 0.5 + gen.uniform()));
    const got = await spatialMean(Tensor.fromArray(xh, [1, C, H, W])).toArray();
    for (let c = 0; c < C; c++) {
      let ref = 0;
      for (let i = 0; i < H * W; i++) ref += xh[c * H * W + i];
      ref /= H * W;
      expect(Math.abs(got[c] - ref) / ref).toBeLessThan(1.2e-7);
    }
  });

  it('sumToShape reverses NumPy broadcasting', async () => {
    const gen = new Generator(23);
    const gh = f32round(randNonZero(gen, 2 * 3 * 7 * 5));
    const g = Tensor.fromArray(gh, [2, 3, 7, 5]);
    const got = await sumToShape(g, [3, 1, 5]).toArray();
    const ref = new Float64Array(15);
    for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) for (let c = 0; c < 7; c++) for (let d = 0; d < 5; d++) ref[b * 5 + d] += gh[((a * 3 + b) * 7 + c) * 5 + d];
    expect(relL2(got, ref)).toBeLessThan(1e-6);
  });

  it('backward: sum/mean spread the gradient, max sends it to the arg max (float64 reference)', async () => {
    const gen = new Generator(24);
    const xh = f32round(randNonZero(gen, 105, 0.1, 2));
    const x = requireGrad(Tensor.fromArray(xh, SHAPE));
    const w = Tensor.fromArray(f32round(randNonZero(gen, 15)), [3, 5]);
    backward(max(x, 1), w);
    const gx = await x.grad!.toArray();
    const wh = await w.toArray();
    const ref = new Float64Array(105);
    for (let o = 0; o < 3; o++) for (let i = 0; i < 5; i++) {
      let best = 0;
      for (let k = 1; k < 7; k++) if (xh[(o * 7 + k) * 5 + i] > xh[(o * 7 + best) * 5 + i]) best = k;
      ref[(o * 7 + best) * 5 + i] = wh[o * 5 + i];
    }
    expect(relL2(gx, ref)).toBeLessThan(1e-6);
  });

  it('gradcheck for sum, mean and max (eps 1e-2, atol 2e-3, rtol 2e-2)', async () => {
    const gen = new Generator(25);
    // Well-separated values so max's arg max does not change under ±eps.
    const xh = Float64Array.from({ length: 3 * 4 * 2 }, (_, i) => ((i * 7) % 24) * 0.25 + 0.1 * gen.uniform());
    const x = Tensor.fromArray(xh, [3, 4, 2]);
    for (const f of [(t: Tensor) => sum(t, 1), (t: Tensor) => mean(t, 0, true), (t: Tensor) => max(t, 2)]) {
      const r = await gradcheck(f, [x]);
      expect(r.failures).toEqual([]);
    }
  });
});
