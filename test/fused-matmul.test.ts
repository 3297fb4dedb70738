// matmul's fused epilogue beyond bias + activation: a residual of the output's shape added in the same launch,
// and a per-row bias ([M]: a 1x1 conv written as W·Xᵀ, the transformer's proj_out in NCHW). Every variant,
// forward and gradients (da, db, dbias, dresidual = dy) against float64, gradcheck, and the unfused baseline.
import { afterAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, relL2 } from './helpers.js';
import { matmulRef, activation } from './ref/linalg.js';
import { poison, allFinite } from './ref/poison.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { matmul, linear, type MatmulVariant } from '../src/tensor/ops/matmul.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { ShapeError } from '../src/errors.js';
import { overrideSettings } from '../src/settings.js';

const g = await setupGpu();
let restore: (() => void) | null = null;
const use = (fuse: boolean) => { restore?.(); restore = overrideSettings({ fuse }); };
afterAll(() => restore?.());

/** dy-weighted reference gradients of c = act(op(a)·op(b) + bias) + res (act linear: none), batch 1 or B for b. */
function refGrads(ah: Float64Array, bh: Float64Array, dy: Float64Array, o: { B: number; M: number; N: number; K: number; transA: boolean; transB: boolean; bBatched: boolean; biasRows: boolean }) {
  const { B, M, N, K } = o;
  const da = new Float64Array(ah.length);
  const db = new Float64Array(bh.length);
  const dbias = new Float64Array(o.biasRows ? M : N);
  for (let t = 0; t < B; t++) {
    const bb = o.bBatched ? t * K * N : 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        const d = dy[(t * M + m) * N + n];
        dbias[o.biasRows ? m : n] += d;
        for (let k = 0; k < K; k++) {
          const ai = t * M * K + (o.transA ? k * M + m : m * K + k);
          const bi = bb + (o.transB ? n * K + k : k * N + n);
          da[ai] += d * bh[bi];
          db[bi] += d * ah[ai];
        }
      }
    }
  }
  return { da, db, dbias };
}

const VARIANTS: MatmulVariant[] = g.isSoftware ? ['blocked', 'strip', 'naive', 'gemm64'] : ['gemm64', 'gemm128', 'blocked'];

describe('matmul epilogue: residual and per-row bias', () => {
  for (const [variant, fuse] of [...VARIANTS.map((v) => [v, true] as const), ['blocked', false] as const]) {
    for (const { biasRows, bBatched, transA, transB, act } of [
      { biasRows: false, bBatched: false, transA: false, transB: true, act: 'none' as const },
      { biasRows: true, bBatched: true, transA: false, transB: true, act: 'none' as const },
      { biasRows: true, bBatched: false, transA: true, transB: false, act: 'none' as const },
      { biasRows: false, bBatched: true, transA: true, transB: false, act: 'silu' as const },
    ]) {
      const name = `${variant}${fuse ? '' : ' unfused'}: ${biasRows ? 'row' : 'column'} bias, b ${bBatched ? 'batched' : 'shared'}, tA ${transA} tB ${transB}, ${act}`;
      it(`${name}: forward + residual and gradients vs float64 (relL2 < 1e-5)`, async () => {
        use(fuse);
        const gen = new Generator(71);
        const [B, M, K, N] = [3, 13, 21, 19];
        const ah = f32round(randNonZero(gen, B * M * K));
        const bh = f32round(randNonZero(gen, (bBatched ? B : 1) * K * N));
        const biash = f32round(randNonZero(gen, biasRows ? M : N));
        const rh = f32round(randNonZero(gen, B * M * N));
        const dyh = f32round(randNonZero(gen, B * M * N));
        const a = requireGrad(Tensor.fromArray(ah, transA ? [B, K, M] : [B, M, K]));
        const bt = requireGrad(Tensor.fromArray(bh, bBatched ? (transB ? [B, N, K] : [B, K, N]) : (transB ? [N, K] : [K, N])));
        const bias = requireGrad(Tensor.fromArray(biash, [biash.length]));
        const r = requireGrad(Tensor.fromArray(rh, [B, M, N]));
        poison([B, M, N]);
        const y = matmul(a, bt, { transA, transB, bias, biasRows, residual: r, activation: act, variant, ...(variant === 'gemm64' ? { splitK: 2 } : {}) });
        const yv = await y.toArray();
        expect(allFinite(yv)).toBe(true);
        const plain = matmulRef(ah, bh, { batch: B, M, N, K, transA, transB, aBatched: true, bBatched });
        const ref = plain.map((v, i) => activation(v + biash[biasRows ? Math.floor(i / N) % M : i % N], act) + rh[i]);
        expect(relL2(yv, ref)).toBeLessThan(1e-5);
        // Gradients where the reference is linear in dy (with an activation the tape runs the unfused ops).
        const dy = Tensor.fromArray(dyh, [B, M, N]);
        if (act === 'none') {
          backward(y, dy);
          const gr = refGrads(ah, bh, dyh, { B, M, N, K, transA, transB, bBatched, biasRows });
          const errs = {
            da: relL2(await a.grad!.toArray(), gr.da), db: relL2(await bt.grad!.toArray(), gr.db),
            dbias: relL2(await bias.grad!.toArray(), gr.dbias), dres: relL2(await r.grad!.toArray(), dyh),
          };
          for (const e of Object.values(errs)) expect(e).toBeLessThan(1e-5);
        }
        [a, bt, bias, r, dy, y].forEach((t) => { t.grad?.dispose(); t.dispose(); });
      });
    }
  }

  it('gradcheck: linear with a residual; matmul with a per-row bias', async () => {
    use(true);
    const gen = new Generator(72);
    const x = Tensor.fromArray(f32round(randNonZero(gen, 2 * 3 * 5)), [2, 3, 5]);
    const w = Tensor.fromArray(f32round(randNonZero(gen, 4 * 5)), [4, 5]);
    const b = Tensor.fromArray(f32round(randNonZero(gen, 4)), [4]);
    const r = Tensor.fromArray(f32round(randNonZero(gen, 2 * 3 * 4)), [2, 3, 4]);
    const r1 = await gradcheck((xx, ww, bb, rr) => linear(xx, ww, bb, { residual: rr }), [x, w, b, r]);
    expect(r1.failures).toEqual([]);
    const wr = Tensor.fromArray(f32round(randNonZero(gen, 4 * 5)), [4, 5]);
    const br = Tensor.fromArray(f32round(randNonZero(gen, 4)), [4]);
    // y [2, 4, 3] = W · xᵀ + bias per row: proj_out's layout.
    const r2 = await gradcheck((ww, xx, bb) => matmul(ww, xx, { transB: true, bias: bb, biasRows: true }), [wr, x, br]);
    expect(r2.failures).toEqual([]);
    [x, w, b, r, wr, br].forEach((t) => t.dispose());
  });

  it('rejects a residual or per-row bias of the wrong shape', () => {
    const a = Tensor.empty([3, 4]);
    const b = Tensor.empty([4, 5]);
    expect(() => matmul(a, b, { residual: Tensor.empty([5, 3]) })).toThrow(ShapeError);
    expect(() => matmul(a, b, { bias: Tensor.empty([5]), biasRows: true })).toThrow(/bias must be \[3\]/);
  });
});
