import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2, randNonZero, f32round } from './helpers.js';
import { matmulRef, type Act } from './ref/linalg.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { matmul, linear, resolveMatmulVariant, type MatmulVariant } from '../src/tensor/ops/matmul.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { mul } from '../src/tensor/ops/elementwise.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { gradcheck } from '../src/autograd/gradcheck.js';

beforeAll(setupGpu);

const VARIANTS: MatmulVariant[] = ['naive', 'blocked', 'strip', 'tiled'];
const allFinite = (y: ArrayLike<number>) => Array.prototype.every.call(y, (v: number) => Number.isFinite(v));

interface Case { batch: number; M: number; K: number; N: number; transA?: boolean; transB?: boolean; bBatched?: boolean; bias?: boolean; act?: Act }

async function runCase(c: Case, variant: MatmulVariant | undefined, seed: number) {
  const gen = new Generator(seed);
  const { batch, M, K, N } = c;
  const bBatched = c.bBatched ?? true;
  const a = f32round(randNonZero(gen, batch * M * K));
  const b = f32round(randNonZero(gen, (bBatched ? batch : 1) * K * N));
  const bias = c.bias ? f32round(randNonZero(gen, N)) : undefined;
  const aShape = batch > 1 ? [batch, ...(c.transA ? [K, M] : [M, K])] : c.transA ? [K, M] : [M, K];
  const bMat = c.transB ? [N, K] : [K, N];
  const bShape = bBatched && batch > 1 ? [batch, ...bMat] : bMat;
  const ta = Tensor.fromArray(a, aShape);
  const tb = Tensor.fromArray(b, bShape);
  const tbias = bias ? Tensor.fromArray(bias, [N]) : undefined;
  // Poison: release a NaN buffer of the output's size so the pool hands it to the matmul; every
  // element must be overwritten (checked by allFinite / relL2 below).
  Tensor.fromArray(new Float32Array(batch * M * N).fill(NaN), [batch * M * N]).dispose();
  const y = matmul(ta, tb, { transA: c.transA, transB: c.transB, bias: tbias, activation: c.act, variant });
  expect(y.shape).toEqual(batch > 1 ? [batch, M, N] : [M, N]);
  const got = await y.toArray();
  const ref = matmulRef(a, b, { batch, M, N, K, transA: c.transA, transB: c.transB, aBatched: true, bBatched: bBatched && batch > 1, bias, act: c.act });
  [ta, tb, tbias, y].forEach((t) => t?.dispose());
  return { got, ref };
}

describe('matmul forward', () => {
  for (const variant of VARIANTS) {
    it(`${variant}: ragged batched shapes, both transposes`, async () => {
      let seed = 10;
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const c: Case = { batch: 3, M: 37, K: 29, N: 45, transA, transB };
          const { got, ref } = await runCase(c, variant, seed++);
          expect(allFinite(got)).toBe(true);
          expect(relL2(got, ref), `${variant} tA=${transA} tB=${transB} (runs as ${resolveMatmulVariant(variant)})`).toBeLessThan(1e-5);
        }
      }
    });

    it(`${variant}: bias + each activation, b unbatched (folded batch)`, async () => {
      let seed = 20;
      // Every activation on the default variant; the epilogue is shared code, so two elsewhere (compiles are slow on lavapipe).
      const acts: Act[] = variant === 'blocked' ? ['none', 'relu', 'gelu', 'geluTanh', 'silu'] : ['none', 'geluTanh'];
      for (const act of acts) {
        const { got, ref } = await runCase({ batch: 2, M: 19, K: 33, N: 70, bBatched: false, bias: true, act, transB: act === 'gelu' }, variant, seed++);
        expect(relL2(got, ref), `${variant} ${act}`).toBeLessThan(1e-5);
      }
    });

    it(`${variant}: larger than one tile in every direction, K not a multiple of 4`, async () => {
      const { got, ref } = await runCase({ batch: 1, M: 133, K: 67, N: 141, transA: true }, variant, 30);
      expect(relL2(got, ref)).toBeLessThan(1e-5);
    });
  }

  it('tiny and degenerate shapes (1×1×1, K = 1, M = 1)', async () => {
    for (const variant of VARIANTS) {
      for (const c of [{ batch: 1, M: 1, K: 1, N: 1 }, { batch: 2, M: 5, K: 1, N: 3 }, { batch: 1, M: 1, K: 9, N: 7 }]) {
        const { got, ref } = await runCase(c, variant, 40);
        expect(relL2(got, ref), `${variant} ${JSON.stringify(c)}`).toBeLessThan(1e-6);
      }
    }
  });

  it('broadcasts batch dims: a unbatched with b batched, and [2,1] × [1,3]', async () => {
    const gen = new Generator(50);
    const a = f32round(randNonZero(gen, 6 * 5));
    const b = f32round(randNonZero(gen, 4 * 5 * 7));
    const y = await matmul(Tensor.fromArray(a, [6, 5]), Tensor.fromArray(b, [4, 5, 7])).toArray();
    const ref = new Float64Array(4 * 6 * 7);
    for (let t = 0; t < 4; t++) ref.set(matmulRef(a, b.subarray(t * 35, (t + 1) * 35), { batch: 1, M: 6, N: 7, K: 5, aBatched: false, bBatched: false }), t * 42);
    expect(relL2(y, ref)).toBeLessThan(1e-6);

    const a2 = f32round(randNonZero(gen, 2 * 3 * 4));
    const b2 = f32round(randNonZero(gen, 3 * 4 * 5));
    const y2t = matmul(Tensor.fromArray(a2, [2, 1, 3, 4]), Tensor.fromArray(b2, [1, 3, 4, 5]));
    expect(y2t.shape).toEqual([2, 3, 3, 5]);
    const y2 = await y2t.toArray();
    const ref2 = new Float64Array(2 * 3 * 15);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) {
      ref2.set(matmulRef(a2.subarray(i * 12, i * 12 + 12), b2.subarray(j * 20, j * 20 + 20), { batch: 1, M: 3, N: 5, K: 4, aBatched: false, bBatched: false }), (i * 3 + j) * 15);
    }
    expect(relL2(y2, ref2)).toBeLessThan(1e-6);
  });

  it('linear matches x·Wᵀ + b for 1-D, 2-D and 3-D x', async () => {
    const gen = new Generator(60);
    const w = f32round(randNonZero(gen, 11 * 13));
    const bias = f32round(randNonZero(gen, 11));
    const tw = Tensor.fromArray(w, [11, 13]);
    const tb = Tensor.fromArray(bias, [11]);
    for (const xs of [[13], [7, 13], [2, 5, 13]]) {
      const rows = xs.slice(0, -1).reduce((p, q) => p * q, 1);
      const x = f32round(randNonZero(gen, rows * 13));
      const y = linear(Tensor.fromArray(x, xs), tw, tb);
      expect(y.shape).toEqual([...xs.slice(0, -1), 11]);
      const ref = matmulRef(x, w, { batch: 1, M: rows, N: 11, K: 13, transB: true, aBatched: false, bBatched: false, bias });
      expect(relL2(await y.toArray(), ref), `x [${xs}]`).toBeLessThan(1e-6);
    }
  });

  it('throws ShapeError on mismatched inner dims or bias', () => {
    const a = Tensor.fromArray(new Float32Array(6), [2, 3]);
    const b = Tensor.fromArray(new Float32Array(8), [4, 2]);
    expect(() => matmul(a, b)).toThrow(/inner dimensions/);
    expect(() => matmul(a, b, { transB: true, bias: Tensor.fromArray(new Float32Array(3), [3]) })).toThrow(/bias/);
  });
});

describe('matmul backward', () => {
  it('dA, dB, dbias through each activation vs float64 (all transposes, batched)', async () => {
    const gen = new Generator(70);
    const batch = 2, M = 9, K = 7, N = 11;
    let i = 0;
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
      const act = (['none', 'relu', 'gelu', 'silu'] as Act[])[i++];
      const a = f32round(randNonZero(gen, batch * M * K));
      const b = f32round(randNonZero(gen, batch * K * N));
      const bias = f32round(randNonZero(gen, N));
      const w = f32round(randNonZero(gen, batch * M * N));
      const ta = requireGrad(Tensor.fromArray(a, [batch, ...(transA ? [K, M] : [M, K])]));
      const tb = requireGrad(Tensor.fromArray(b, [batch, ...(transB ? [N, K] : [K, N])]));
      const tbias = requireGrad(Tensor.fromArray(bias, [N]));
      const y = matmul(ta, tb, { transA, transB, bias: tbias, activation: act });
      backward(sumAll(mul(y, Tensor.fromArray(w, [batch, M, N]))));
      // float64: L = Σ w·act(z); dz = w·act'(z) by central differences of the float64 activation.
      const z = matmulRef(a, b, { batch, M, N, K, transA, transB, aBatched: true, bBatched: true, bias });
      const h = 1e-6;
      const dz = z.map((v, j) => (w[j] * (actRef(v + h, act) - actRef(v - h, act))) / (2 * h));
      const refA = new Float64Array(a.length);
      const refB = new Float64Array(b.length);
      const refBias = new Float64Array(N);
      for (let t = 0; t < batch; t++) for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        const d = dz[(t * M + m) * N + n];
        refBias[n] += d;
        for (let k = 0; k < K; k++) {
          const ai = t * M * K + (transA ? k * M + m : m * K + k);
          const bi = t * K * N + (transB ? n * K + k : k * N + n);
          refA[ai] += d * b[bi];
          refB[bi] += d * a[ai];
        }
      }
      expect(relL2(await ta.grad!.toArray(), refA), `dA ${act}`).toBeLessThan(1e-5);
      expect(relL2(await tb.grad!.toArray(), refB), `dB ${act}`).toBeLessThan(1e-5);
      expect(relL2(await tbias.grad!.toArray(), refBias), `dbias ${act}`).toBeLessThan(1e-5);
    }
  });

  it('gradcheck: matmul (batched, transposes), broadcast b, and linear with gelu', async () => {
    const gen = new Generator(80);
    const t = (shape: number[]) => Tensor.fromArray(randNonZero(gen, shape.reduce((p, q) => p * q, 1)), shape);
    const r1 = await gradcheck((x, y) => matmul(x, y, { transA: true }), [t([2, 5, 4]), t([2, 5, 6])]);
    expect(r1.ok, JSON.stringify(r1.failures.slice(0, 3))).toBe(true);
    const r2 = await gradcheck((x, y) => matmul(x, y, { transB: true }), [t([3, 4, 5]), t([6, 5])]);
    expect(r2.ok, JSON.stringify(r2.failures.slice(0, 3))).toBe(true);
    const r3 = await gradcheck((x, y) => matmul(x, y, { transA: true, transB: true }), [t([3, 5, 4]), t([6, 5])]);
    expect(r3.ok, JSON.stringify(r3.failures.slice(0, 3))).toBe(true);
    const r4 = await gradcheck((x, w, b) => linear(x, w, b, { activation: 'gelu' }), [t([2, 3, 5]), t([4, 5]), t([4])]);
    expect(r4.ok, JSON.stringify(r4.failures.slice(0, 3))).toBe(true);
    const r5 = await gradcheck((x, y) => matmul(x, y), [t([5, 4]), t([2, 4, 3])]);
    expect(r5.ok, JSON.stringify(r5.failures.slice(0, 3))).toBe(true);
  });
});

function actRef(x: number, act: Act): number {
  return matmulRef([x], [1], { batch: 1, M: 1, N: 1, K: 1, aBatched: false, bBatched: false, act })[0];
}
