// matmulF16 (kernels/matmul_f16.wgsl): f16 operands, f32 accumulation, f16/f32 storage, against
// float64. Tolerances: test/ref/half.ts. Runs on lavapipe through the plain-WGSL fragments; the
// subgroup-matrix (tensor-core) tiles run where the device offers them and are skipped elsewhere.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { setupGpu, randNonZero, relL2 } from './helpers.js';
import { matmulRef, type Act } from './ref/linalg.js';
import { f16round, F16_TOL, F32_ACC_TOL } from './ref/half.js';
import { allFinite } from './ref/poison.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { matmulF16 } from '../src/tensor/ops/matmul_f16.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { smShapes, tileId } from '../src/tensor/plan/frag.js';
import { ShapeError } from '../src/errors.js';

const g0 = await setupGpu();
const canRun = g0.acquired.hasF16 && g0.acquired.hasSubgroups;
const sm = canRun ? smShapes(g0) : [];
beforeAll(setupGpu);
// Each case compiles fresh pipelines: lavapipe's LLVM takes seconds per fragment kernel (minutes on a loaded machine).
vi.setConfig({ testTimeout: 600_000 });

interface Case {
  name: string; M: number; K: number; N: number; batch?: number; bBatched?: boolean;
  transA?: boolean; transB?: boolean; bias?: boolean; act?: Act; alpha?: number;
  ta?: 'f16' | 'f32'; tb?: 'f16' | 'f32'; out?: 'f16' | 'f32'; tile?: string;
}
const CASES: Case[] = [
  { name: 'ragged f16·f16 → f16', M: 37, K: 45, N: 29 },
  { name: 'f32·f16 → f32 (autocast: activation × frozen f16 weight)', M: 33, K: 70, N: 41, ta: 'f32', out: 'f32' },
  { name: 'transB + bias + gelu, f32 out', M: 19, K: 53, N: 35, transB: true, bias: true, act: 'gelu', out: 'f32' },
  { name: 'transA, alpha 0.5', M: 27, K: 18, N: 33, transA: true, alpha: 0.5, out: 'f32' },
  { name: 'transA + transB, f32·f32 staged f16', M: 21, K: 31, N: 17, transA: true, transB: true, ta: 'f32', tb: 'f32', out: 'f32' },
  { name: 'batch 3, b one matrix (folded)', M: 11, K: 24, N: 13, batch: 3, out: 'f32' },
  { name: 'batch 2, both batched, transB', M: 15, K: 22, N: 9, batch: 2, bBatched: true, transB: true },
  { name: 'split-K 3 (forced tile) + bias + silu', M: 23, K: 100, N: 26, bias: true, act: 'silu', out: 'f32', tile: 'simt4x4x4/w2x2/t1x1/k8/s3' },
  { name: 'big warp tile (forced), f16 out', M: 40, K: 36, N: 50, tile: 'simt4x4x4/w2x2/t2x2/k8' },
];

function inputs(c: Case, seed: number) {
  const gen = new Generator(seed);
  const batch = c.batch ?? 1;
  const a = randNonZero(gen, batch * c.M * c.K);
  const nbB = c.bBatched ? batch : 1;
  const b = randNonZero(gen, nbB * c.K * c.N);
  const bias = randNonZero(gen, c.N);
  return { a, b, bias, batch, nbB };
}

function shapes(c: Case, batch: number, nbB: number) {
  const aS = c.transA ? [c.K, c.M] : [c.M, c.K];
  const bS = c.transB ? [c.N, c.K] : [c.K, c.N];
  return { aShape: batch > 1 ? [batch, ...aS] : aS, bShape: nbB > 1 ? [nbB, ...bS] : bS };
}

/** float64 on the given values; `round` rounds the stored f16 operands first (what the kernel multiplies). */
function reference(c: Case, a: Float64Array, b: Float64Array, bias: Float64Array, batch: number, round: boolean) {
  const ra = round ? f16round(a) : a;
  const rb = round ? f16round(b) : b;
  return matmulRef(ra, rb, {
    batch, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, aBatched: batch > 1, bBatched: !!c.bBatched,
    bias: c.bias ? Float64Array.from(Float32Array.from(bias)) : undefined, act: c.act,
  }).map((v) => v * 1); // alpha applied below
}

describe.skipIf(!canRun)('matmulF16 forward vs float64', () => {
  for (const c of CASES) {
    it(`${c.name}: relL2 < ${F16_TOL} vs float64, < ${F32_ACC_TOL} vs float64 on the f16-rounded operands`, async () => {
      const { a, b, bias, batch, nbB } = inputs(c, 3);
      const { aShape, bShape } = shapes(c, batch, nbB);
      const ta = Tensor.fromArray(a, aShape, c.ta ?? 'f16');
      const tb = Tensor.fromArray(b, bShape, c.tb ?? 'f16');
      const tbias = c.bias ? Tensor.fromArray(bias, [c.N]) : undefined;
      const y = matmulF16(ta, tb, { transA: c.transA, transB: c.transB, bias: tbias, activation: c.act, alpha: c.alpha, out: c.out, tile: c.tile });
      expect(y.dtype).toBe(c.out ?? c.ta ?? 'f16');
      expect(y.shape).toEqual([...(batch > 1 ? [batch] : []), c.M, c.N]);
      const yv = await y.toArray();
      expect(allFinite(yv)).toBe(true);
      const alpha = c.alpha ?? 1;
      // alpha scales the product before the bias: fold it into A for the reference.
      const aS = a.map((v) => v * alpha);
      const rounded = (round: boolean) => {
        const ra = round ? f16round(a).map((v) => v * alpha) : aS;
        return matmulRef(ra, round ? f16round(b) : b, {
          batch, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, aBatched: batch > 1, bBatched: !!c.bBatched,
          bias: c.bias ? Float64Array.from(Float32Array.from(bias)) : undefined, act: c.act,
        });
      };
      const eLoose = relL2(yv, rounded(false));
      const refR = rounded(true);
      // An f16 output is itself rounded: compare it with the rounded reference.
      const eTight = relL2(yv, c.out === 'f32' || (c.out === undefined && c.ta === 'f32') ? refR : f16round(refR));
      console.log(`matmulF16 ${c.name}: relL2 ${eLoose.toExponential(2)} vs float64, ${eTight.toExponential(2)} vs rounded operands`);
      expect(eLoose).toBeLessThan(F16_TOL);
      expect(eTight).toBeLessThan(c.out === 'f32' || c.ta === 'f32' ? F32_ACC_TOL : 2 ** -11);
    });
  }

  it('refuses mismatched shapes and i32', () => {
    const a = Tensor.fromArray(new Float32Array(6), [2, 3], 'f16');
    const b = Tensor.fromArray(new Float32Array(8), [4, 2], 'f16');
    expect(() => matmulF16(a, b)).toThrow(ShapeError);
    expect(() => matmulF16(Tensor.fromArray([1, 2], [1, 2], 'i32'), b)).toThrow(/i32/);
  });
});

describe.skipIf(!canRun)('matmulF16 backward', () => {
  it('dA, dB, dbias vs the float64 backward of the f16-rounded operands (f32 gradients)', async () => {
    const M = 23; const K = 37; const N = 19;
    const gen = new Generator(5);
    const a = randNonZero(gen, M * K);
    const w = randNonZero(gen, N * K);
    const bias = randNonZero(gen, N);
    const dy = randNonZero(gen, M * N);
    const ta = requireGrad(Tensor.fromArray(a, [M, K], 'f32'));
    const tw = requireGrad(Tensor.fromArray(w, [N, K], 'f16'));
    const tb = requireGrad(Tensor.fromArray(bias, [N]));
    const y = matmulF16(ta, tw, { transB: true, bias: tb, out: 'f32' });
    backward(y, Tensor.fromArray(dy, [M, N]));
    const ra = f16round(a);
    const rw = f16round(w);
    const rdy = f16round(dy);
    // dA = dy·W, dW = dyᵀ·a (W [N, K]), db = Σ_m dy.
    const dA = matmulRef(rdy, rw, { batch: 1, M, N: K, K: N, aBatched: false, bBatched: false });
    const dW = matmulRef(rdy, ra, { batch: 1, M: N, N: K, K: M, transA: true, aBatched: false, bBatched: false });
    const db = new Float64Array(N);
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) db[n] += dy[m * N + n];
    for (const t of [ta.grad!, tw.grad!, tb.grad!]) expect(t.dtype).toBe('f32');
    const e = { dA: relL2(await ta.grad!.toArray(), dA), dW: relL2(await tw.grad!.toArray(), dW), db: relL2(await tb.grad!.toArray(), db) };
    console.log(`matmulF16 backward relL2 ${JSON.stringify(e)}`);
    expect(e.dA).toBeLessThan(F32_ACC_TOL);
    expect(e.dW).toBeLessThan(F32_ACC_TOL);
    expect(e.db).toBeLessThan(1e-6);
  });

  it('gradcheck through f32 staging (same kernels and backward rules, exact enough for finite differences)', async () => {
    const gen = new Generator(9);
    const a = requireGrad(Tensor.fromArray(randNonZero(gen, 3 * 5 * 4), [3, 5, 4]));
    const b = requireGrad(Tensor.fromArray(randNonZero(gen, 6 * 4), [6, 4]));
    const bias = requireGrad(Tensor.fromArray(randNonZero(gen, 6), [6]));
    const r = await gradcheck((x, w, c) => matmulF16(x, w, { transB: true, bias: c, alpha: 0.7, staging: 'f32', out: 'f32' }), [a, b, bias]);
    expect(r.ok, JSON.stringify(r.failures?.slice(0, 3))).toBe(true);
  });
});

describe.skipIf(sm.length === 0)('matmulF16 on subgroup matrices (tensor cores)', () => {
  for (const [FM, FN, FK] of sm) {
    for (const [WM, WN, TM, TN] of [[2, 2, 1, 1], [4, 2, 2, 2]]) {
      for (const trans of [[false, false], [true, false], [false, true]]) {
        const tile = tileId({ unit: 'sm', FM, FN, FK, WM, WN, TM, TN, BK: Math.max(32, FK), split: 1 });
        it(`${tile} trans ${trans}: relL2 < 1e-4 vs float64 on the f16-rounded operands (f32 accumulation)`, async () => {
          const c: Case = { name: tile, M: 77, K: 93, N: 65, transA: trans[0], transB: trans[1], bias: true, out: 'f32', tile };
          const { a, b, bias } = inputs(c, 17);
          const { aShape, bShape } = shapes(c, 1, 1);
          const y = matmulF16(Tensor.fromArray(a, aShape, 'f16'), Tensor.fromArray(b, bShape, 'f16'), { transA: c.transA, transB: c.transB, bias: Tensor.fromArray(bias, [c.N]), out: 'f32', tile });
          const ref = matmulRef(f16round(a), f16round(b), { batch: 1, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, aBatched: false, bBatched: false, bias: Float64Array.from(Float32Array.from(bias)) });
          const e = relL2(await y.toArray(), ref);
          console.log(`matmulF16 ${tile} trans ${trans}: relL2 ${e.toExponential(2)}`);
          expect(e).toBeLessThan(1e-4);
        });
      }
    }
  }
});
