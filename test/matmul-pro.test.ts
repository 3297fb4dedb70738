// linearPrologue (kernels/matmul_pro.wgsl): nn.Linear products whose input passes through a LayerNorm or GEGLU on
// load, with up to three weights per launch. Forward against float64 at ragged shapes (M = 37, K = 36, N = 141:
// two column tiles of 128 with a tail; N = 19: one partial tile), one launch each, the same values as the
// unfused ops (LPO_FUSE=0), and gradients by finite differences (the numeric side runs the fused launch under
// noGrad, the analytic side the unfused ops on the tape).
import { afterAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, randn64, relL2 } from './helpers.js';
import { matmulRef } from './ref/linalg.js';
import { layerNormRef } from './ref/norm.js';
import { erf64 } from './ref/special.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { gpu } from '../src/gpu/runtime.js';
import { linearPrologue } from '../src/tensor/ops/matmul_pro.js';
import { canRunMatmulPrologue } from '../src/tensor/plan/matmul.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { noGrad } from '../src/autograd/tape.js';
import { add, mul } from '../src/tensor/ops/elementwise.js';
import { overrideSettings } from '../src/settings.js';

await setupGpu();
const fusedHere = canRunMatmulPrologue();
let restore: (() => void) | null = null;
const use = (fuse: boolean) => { restore?.(); restore = overrideSettings({ fuse }); };
afterAll(() => restore?.());

// f32 products over K ≤ 36 with a normalised or GELU-gated input: relL2 within 1e-5 of float64.
const TOL = 1e-5;

function gegluRef(h: ArrayLike<number>, rows: number, D: number): Float64Array {
  const y = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) for (let j = 0; j < D; j++) {
    const v = h[r * 2 * D + j], g = h[r * 2 * D + D + j];
    y[r * D + j] = v * g * 0.5 * (1 + erf64(g / Math.SQRT2));
  }
  return y;
}

interface Case { name: string; lead: number[]; K: number; N: number; W: number; pro: 'norm' | 'geglu' | 'none'; bias: boolean; residual: boolean }
const CASES: Case[] = [
  { name: 'LayerNorm, 3 weights (self-attention q/k/v)', lead: [37], K: 36, N: 141, W: 3, pro: 'norm', bias: false, residual: false },
  { name: 'LayerNorm, 1 weight + bias (ff.net.0.proj)', lead: [2, 19], K: 36, N: 141, W: 1, pro: 'norm', bias: true, residual: false },
  { name: 'LayerNorm, 1 weight, one partial tile', lead: [37], K: 36, N: 19, W: 1, pro: 'norm', bias: false, residual: false },
  { name: 'GEGLU, 1 weight + bias + residual (ff.net.2)', lead: [37], K: 36, N: 141, W: 1, pro: 'geglu', bias: true, residual: true },
  { name: 'no prologue, 2 weights (cross-attention k/v)', lead: [3, 13], K: 20, N: 19, W: 2, pro: 'none', bias: false, residual: false },
];

describe('linearPrologue', () => {
  for (const c of CASES) {
    it(`${c.name}: [${c.lead}, ${c.K}] → ${c.W}×[${c.N}] vs float64 (relL2 < ${TOL}), ${fusedHere ? 'one launch' : 'unfused'}, = LPO_FUSE=0`, async () => {
      use(true);
      const gen = new Generator(91);
      const M = c.lead.reduce((a, b) => a * b, 1);
      const last = c.pro === 'geglu' ? 2 * c.K : c.K;
      const xh = f32round(randn64(gen, M * last));
      const wh = Array.from({ length: c.W }, () => f32round(randn64(gen, c.N * c.K, 0.3)));
      const bh = c.bias ? f32round(randn64(gen, c.N)) : undefined;
      const rh = c.residual ? f32round(randn64(gen, M * c.N)) : undefined;
      const gh = f32round(randNonZero(gen, c.K, 0.5, 1.5));
      const beh = f32round(randn64(gen, c.K));
      const eps = 1e-5;
      const x = Tensor.fromArray(xh, [...c.lead, last]);
      const ws = wh.map((w) => Tensor.fromArray(w, [c.N, c.K]));
      const b = bh && Tensor.fromArray(bh, [c.N]);
      const r = rh && Tensor.fromArray(rh, [...c.lead, c.N]);
      const gamma = Tensor.fromArray(gh, [c.K]);
      const beta = Tensor.fromArray(beh, [c.K]);
      const opts = { norm: c.pro === 'norm' ? { weight: gamma, bias: beta, eps } : undefined, geglu: c.pro === 'geglu', biases: [b], residual: r };

      const a = c.pro === 'norm' ? layerNormRef(xh, M, c.K, eps, gh, beh).y : c.pro === 'geglu' ? gegluRef(xh, M, c.K) : xh;
      const before = gpu().counters.dispatches;
      const ys = noGrad(() => linearPrologue(x, ws, opts));
      const launches = gpu().counters.dispatches - before;
      use(false);
      const ysUnfused = noGrad(() => linearPrologue(x, ws, opts));
      for (let i = 0; i < c.W; i++) {
        expect(ys[i].shape).toEqual([...c.lead, c.N]);
        const ref = matmulRef(a, wh[i], { batch: 1, M, N: c.N, K: c.K, transB: true, aBatched: false, bBatched: false, bias: i === 0 ? bh : undefined });
        if (rh) for (let j = 0; j < ref.length; j++) ref[j] += rh[j];
        const got = await ys[i].toArray();
        const e = relL2(got, ref);
        const eu = relL2(got, await ysUnfused[i].toArray());
        console.log(`${c.name} output ${i}: relL2 ${e.toExponential(2)} vs float64, ${eu.toExponential(2)} vs unfused`);
        expect(got.every(Number.isFinite)).toBe(true);
        expect(e).toBeLessThan(TOL);
        expect(eu).toBeLessThan(TOL);
      }
      if (fusedHere) expect(launches).toBe(1);
      [x, ...ws, b, r, gamma, beta, ...ys, ...ysUnfused].forEach((t) => t?.dispose());
    });
  }

  it('K not a multiple of 4 (K = 21) falls back to the unfused ops, same values', async () => {
    use(true);
    const gen = new Generator(5);
    const [M, K, N] = [37, 21, 19];
    const xh = f32round(randn64(gen, M * 2 * K));
    const wh = f32round(randn64(gen, N * K, 0.3));
    const x = Tensor.fromArray(xh, [M, 2 * K]);
    const w = Tensor.fromArray(wh, [N, K]);
    const [y] = noGrad(() => linearPrologue(x, [w], { geglu: true }));
    const ref = matmulRef(gegluRef(xh, M, K), wh, { batch: 1, M, N, K, transB: true, aBatched: false, bBatched: false });
    expect(relL2(await y.toArray(), ref)).toBeLessThan(TOL);
    [x, w, y].forEach((t) => t.dispose());
  });

  it('rejects weights of the wrong width and a residual with several weights', () => {
    const x = Tensor.fromArray(new Float32Array(32), [4, 8]);
    const w = Tensor.fromArray(new Float32Array(24), [3, 8]);
    const bad = Tensor.fromArray(new Float32Array(21), [3, 7]);
    const res = Tensor.fromArray(new Float32Array(12), [4, 3]);
    expect(() => linearPrologue(x, [bad])).toThrow(/must be \[N, 8\]/);
    expect(() => linearPrologue(x, [w, w], { residual: res })).toThrow(/exactly one weight/);
    [x, w, bad, res].forEach((t) => t.dispose());
  });

  // gradcheck's finite differences evaluate under noGrad (the fused launch); its analytic gradient is the tape's
  // (the unfused ops): agreement checks the fused forward against the unfused backward.
  for (const pro of ['norm', 'geglu'] as const) {
    it(`gradcheck, ${pro === 'norm' ? 'LayerNorm prologue, 2 weights' : 'GEGLU prologue, 1 weight + bias + residual'}`, async () => {
      use(true);
      const gen = new Generator(17);
      const [M, K, N] = [5, 8, 6];
      const last = pro === 'geglu' ? 2 * K : K;
      const x = Tensor.fromArray(f32round(randNonZero(gen, M * last)), [M, last]);
      const w0 = Tensor.fromArray(f32round(randn64(gen, N * K, 0.5)), [N, K]);
      const w1 = Tensor.fromArray(f32round(randn64(gen, N * K, 0.5)), [N, K]);
      const g = Tensor.fromArray(f32round(randNonZero(gen, K, 0.5, 1.5)), [K]);
      const be = Tensor.fromArray(f32round(randNonZero(gen, K)), [K]);
      const bias = Tensor.fromArray(f32round(randNonZero(gen, N)), [N]);
      const res = Tensor.fromArray(f32round(randNonZero(gen, M * N)), [M, N]);
      const r = pro === 'norm'
        ? await gradcheck((a, p, q, k, c) => {
          const [y0, y1] = linearPrologue(a, [p, q], { norm: { weight: k, bias: c, eps: 1e-5 } });
          return add(y0, mul(y1, y1));
        }, [x, w0, w1, g, be])
        : await gradcheck((a, p, bb, rr) => linearPrologue(a, [p], { geglu: true, biases: [bb], residual: rr })[0], [x, w0, bias, res]);
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(true);
      [x, w0, w1, g, be, bias, res].forEach((t) => t.dispose());
    });
  }
});
