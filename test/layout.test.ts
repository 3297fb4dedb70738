import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2, randNonZero, f32round } from './helpers.js';
import { permuteRef, sliceRef, concatRef } from './ref/linalg.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { permute, transpose, slice, concat, chunk, reshape } from '../src/tensor/ops/layout.js';
import { cast, canCastF16 } from '../src/tensor/ops/cast.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { gpu } from '../src/gpu/runtime.js';

beforeAll(setupGpu);
// Adapters without 'shader-f16' cannot cast: the cast test is skipped there.
const hasF16 = (await setupGpu()).acquired.hasF16;

const numel = (s: number[]) => s.reduce((p, q) => p * q, 1);
const exact = (a: ArrayLike<number>, b: ArrayLike<number>) => expect(relL2(a, b)).toBe(0);

describe('layout', () => {
  it('permute of rank 2..6 matches the reference exactly', async () => {
    const gen = new Generator(1);
    const cases: [number[], number[]][] = [
      [[5, 7], [1, 0]],
      [[3, 5, 7], [2, 0, 1]],
      [[2, 3, 5, 7], [0, 2, 1, 3]],
      [[2, 3, 4, 5, 3], [4, 3, 2, 1, 0]],
      [[2, 3, 2, 3, 2, 5], [5, 1, 3, 0, 2, 4]],
    ];
    for (const [shape, dims] of cases) {
      const x = f32round(randNonZero(gen, numel(shape)));
      const y = permute(Tensor.fromArray(x, shape), dims);
      expect(y.shape).toEqual(dims.map((d) => shape[d]));
      exact(await y.toArray(), permuteRef(x, shape, dims));
    }
    const x = f32round(randNonZero(gen, 24));
    const t = transpose(Tensor.fromArray(x, [2, 3, 4]), -1, 0);
    expect(t.shape).toEqual([4, 3, 2]);
    exact(await t.toArray(), permuteRef(x, [2, 3, 4], [2, 1, 0]));
  });

  it('permute copies i32 bits unchanged', async () => {
    const x = Tensor.fromArray([1, -2, 3, 2 ** 30, -(2 ** 31), 7], [2, 3], 'i32');
    expect(Array.from(await transpose(x, 0, 1).toInt32Array())).toEqual([1, 2 ** 30, -2, -(2 ** 31), 3, 7]);
  });

  it('slice (negative indices), concat and chunk match the reference; poisoned concat output stays finite', async () => {
    const gen = new Generator(2);
    const shape = [3, 11, 5];
    const x = f32round(randNonZero(gen, numel(shape)));
    const t = Tensor.fromArray(x, shape);
    exact(await slice(t, 1, { start: 2, end: 9 }).toArray(), sliceRef(x, shape, 1, 2, 9));
    exact(await slice(t, -1, { start: -3 }).toArray(), sliceRef(x, shape, 2, 2, 5));
    exact(await slice(t, 0, { start: 1, end: 2 }).toArray(), sliceRef(x, shape, 0, 1, 2));

    const shapes = [[3, 4, 5], [3, 1, 5], [3, 6, 5]];
    const xs = shapes.map((s) => f32round(randNonZero(gen, numel(s))));
    const y = concat(xs.map((v, i) => Tensor.fromArray(v, shapes[i])), 1);
    expect(y.shape).toEqual([3, 11, 5]);
    const got = await y.toArray();
    expect(got.every(Number.isFinite)).toBe(true);
    exact(got, concatRef(xs, shapes, 1));

    // Poison: the pool hands back the buffer a NaN tensor just released; concat must overwrite all of it.
    const nan = Tensor.fromArray(new Float32Array(3 * 11 * 5).fill(NaN), [3, 11, 5]);
    nan.dispose();
    const y2 = await concat(xs.map((v, i) => Tensor.fromArray(v, shapes[i])), 1).toArray();
    expect(y2.every(Number.isFinite)).toBe(true);

    const parts = chunk(t, 3, 1);
    expect(parts.map((p) => p.shape[1])).toEqual([4, 4, 3]);
    exact(await parts[2].toArray(), sliceRef(x, shape, 1, 8, 11));
  });

  it('throws ShapeError on bad dims or mismatched concat', () => {
    const t = Tensor.fromArray(new Float32Array(6), [2, 3]);
    expect(() => permute(t, [0, 0])).toThrow(/permutation/);
    expect(() => concat([t, Tensor.fromArray(new Float32Array(4), [2, 2])], 0)).toThrow(/differ/);
  });

  it('gradcheck: permute, transpose, concat, slice, chunk, reshape', async () => {
    const gen = new Generator(3);
    const t = (s: number[]) => Tensor.fromArray(randNonZero(gen, numel(s)), s);
    for (const [name, fn, ins] of [
      ['permute', (a: Tensor) => permute(a, [2, 0, 1]), [t([2, 3, 4])]],
      ['transpose', (a: Tensor) => transpose(a, 0, 1), [t([3, 5])]],
      ['concat', (a: Tensor, b: Tensor) => concat([a, b, a], 1), [t([2, 3]), t([2, 2])]],
      ['slice', (a: Tensor) => slice(a, 1, { start: 1, end: 4 }), [t([3, 5, 2])]],
      ['chunk', (a: Tensor) => chunk(a, 2, 0)[1], [t([5, 3])]],
      ['reshape', (a: Tensor) => reshape(a, [6, -1]), [t([2, 3, 4])]],
    ] as [string, (...xs: Tensor[]) => Tensor, Tensor[]][]) {
      const r = await gradcheck(fn, ins);
      expect(r.ok, `${name}: ${JSON.stringify(r.failures.slice(0, 3))}`).toBe(true);
    }
  });

  it.skipIf(!hasF16)('cast f32 → f16 → f32 rounds like IEEE half (ragged size, overflow to inf)', async () => {
    expect(canCastF16()).toBe(true);
    const gen = new Generator(4);
    const x = f32round(randNonZero(gen, 1001, 1e-3, 100));
    x[0] = 1e5; x[1] = -7e4; x[2] = 65504; x[3] = 2 ** -20;
    const h = cast(Tensor.fromArray(x, [7, 143]), 'f16');
    expect(h.dtype).toBe('f16');
    const back = cast(h, 'f32');
    const got = await back.toArray();
    const viaHost = await h.toArray(); // the host's half decoder
    exact(got.slice(4), viaHost.slice(4));
    expect(got[0]).toBe(Infinity);
    expect(got[1]).toBe(-Infinity);
    expect(got[2]).toBe(65504);
    // f16 has an 11-bit significand: relative rounding error ≤ 2^-11 (normal range).
    for (let i = 4; i < x.length; i++) expect(Math.abs(got[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -11 + 1e-7);
    expect(gpu().acquired.hasF16).toBe(true);
  });
});
