// linearPrologue (kernels/matmul_pro.wgsl): nn.Linear products whose input passes through a LayerNorm on load,
// whose output passes through GEGLU on store, with up to three weights per launch. Forward against float64 at ragged shapes (M = 37, K = 36, N = 141:
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
import { canRunMatmulPrologue, normPrologueFits } from '../src/tensor/plan/matmul.js';
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

// N: the output width (with geglu the weight is [2N, K]).
interface Case { name: string; lead: number[]; K: number; N: number; W: number; norm: boolean; geglu: boolean; bias: boolean; residual: boolean }
const CASES: Case[] = [
  { name: 'LayerNorm, 3 weights (self-attention q/k/v)', lead: [37], K: 36, N: 141, W: 3, norm: true, geglu: false, bias: false, residual: false },
  { name: 'LayerNorm, 1 weight + bias + residual', lead: [2, 19], K: 36, N: 141, W: 1, norm: true, geglu: false, bias: true, residual: true },
  { name: 'LayerNorm, 1 weight, one partial tile', lead: [37], K: 36, N: 19, W: 1, norm: true, geglu: false, bias: false, residual: false },
  { name: 'LayerNorm + GEGLU + bias (ff.net.0)', lead: [2, 19], K: 36, N: 141, W: 1, norm: true, geglu: true, bias: true, residual: false },
  { name: 'GEGLU, 1 weight, one partial tile', lead: [37], K: 20, N: 19, W: 1, norm: false, geglu: true, bias: false, residual: false },
  { name: 'LayerNorm over 74 rows (a launch of its own), 3 weights', lead: [2, 37], K: 36, N: 141, W: 3, norm: true, geglu: false, bias: false, residual: false },
  { name: 'no prologue, 2 weights (cross-attention k/v)', lead: [3, 13], K: 20, N: 19, W: 2, norm: false, geglu: false, bias: false, residual: false },
];

describe('linearPrologue', () => {
  for (const c of CASES) {
    it(`${c.name}: [${c.lead}, ${c.K}] → ${c.W}×[${c.N}] vs float64 (relL2 < ${TOL}), ${fusedHere ? 'launch count' : 'unfused'}, = LPO_FUSE=0`, async () => {
      use(true);
      const gen = new Generator(91);
      const M = c.lead.reduce((a, b) => a * b, 1);
      const Nw = c.geglu ? 2 * c.N : c.N;
      const xh = f32round(randn64(gen, M * c.K));
      const wh = Array.from({ length: c.W }, () => f32round(randn64(gen, Nw * c.K, 0.3)));
      const bh = c.bias ? f32round(randn64(gen, Nw)) : undefined;
      const rh = c.residual ? f32round(randn64(gen, M * c.N)) : undefined;
      const gh = f32round(randNonZero(gen, c.K, 0.5, 1.5));
      const beh = f32round(randn64(gen, c.K));
      const eps = 1e-5;
      const x = Tensor.fromArray(xh, [...c.lead, c.K]);
      const ws = wh.map((w) => Tensor.fromArray(w, [Nw, c.K]));
      const b = bh && Tensor.fromArray(bh, [Nw]);
      const r = rh && Tensor.fromArray(rh, [...c.lead, c.N]);
      const gamma = Tensor.fromArray(gh, [c.K]);
      const beta = Tensor.fromArray(beh, [c.K]);
      const opts = { norm: c.norm ? { weight: gamma, bias: beta, eps } : undefined, geglu: c.geglu, biases: [b], residual: r };

      const a = c.norm ? layerNormRef(xh, M, c.K, eps, gh, beh).y : xh;
      const before = gpu().counters.dispatches;
      const ys = noGrad(() => linearPrologue(x, ws, opts));
      const launches = gpu().counters.dispatches - before;
      use(false);
      const ysUnfused = noGrad(() => linearPrologue(x, ws, opts));
      for (let i = 0; i < c.W; i++) {
        expect(ys[i].shape).toEqual([...c.lead, c.N]);
        const prod = matmulRef(a, wh[i], { batch: 1, M, N: Nw, K: c.K, transB: true, aBatched: false, bBatched: false, bias: i === 0 ? bh : undefined });
        const ref = c.geglu ? gegluRef(prod, M, c.N) : prod;
        if (rh) for (let j = 0; j < ref.length; j++) ref[j] += rh[j];
        const got = await ys[i].toArray();
        const e = relL2(got, ref);
        const eu = relL2(got, await ysUnfused[i].toArray());
        console.log(`${c.name} output ${i}: relL2 ${e.toExponential(2)} vs float64, ${eu.toExponential(2)} vs unfused`);
        expect(got.every(Number.isFinite)).toBe(true);
        expect(e).toBeLessThan(TOL);
        expect(eu).toBeLessThan(TOL);
      }
      // Many rows: the LayerNorm runs as its own launch before the fused product (src/tensor/plan/matmul.ts).
      if (fusedHere) expect(launches).toBe(c.norm && !normPrologueFits(M) ? 2 : 1);
      [x, ...ws, b, r, gamma, beta, ...ys, ...ysUnfused].forEach((t) => t?.dispose());
    });
  }

  it('K not a multiple of 4 (K = 21) falls back to the unfused ops, same values', async () => {
    use(true);
    const gen = new Generator(5);
    const [M, K, N] = [37, 21, 19];
    const xh = f32round(randn64(gen, M * K));
    const wh = f32round(randn64(gen, 2 * N * K, 0.3));
    const x = Tensor.fromArray(xh, [M, K]);
    const w = Tensor.fromArray(wh, [2 * N, K]);
    const [y] = noGrad(() => linearPrologue(x, [w], { geglu: true }));
    const ref = gegluRef(matmulRef(xh, wh, { batch: 1, M, N: 2 * N, K, transB: true, aBatched: false, bBatched: false }), M, N);
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
    expect(() => linearPrologue(x, [w], { geglu: true })).toThrow(/geglu takes one weight \[2N, K\]/);
    [x, w, bad, res].forEach((t) => t.dispose());
  });

  // gradcheck's finite differences evaluate under noGrad (the fused launch); its analytic gradient is the tape's
  // (the unfused ops): agreement checks the fused forward against the unfused backward.
  for (const pro of ['norm', 'geglu'] as const) {
    it(`gradcheck, ${pro === 'norm' ? 'LayerNorm prologue, 2 weights' : 'LayerNorm + GEGLU, 1 weight + bias'}`, async () => {
      use(true);
      const gen = new Generator(17);
      const [M, K, N] = [5, 8, 6];
      const x = Tensor.fromArray(f32round(randNonZero(gen, M * K)), [M, K]);
      const w0 = Tensor.fromArray(f32round(randn64(gen, N * K, 0.5)), [N, K]);
      const w1 = Tensor.fromArray(f32round(randn64(gen, N * K, 0.5)), [N, K]);
      const g = Tensor.fromArray(f32round(randNonZero(gen, K, 0.5, 1.5)), [K]);
      const be = Tensor.fromArray(f32round(randNonZero(gen, K)), [K]);
      const bias = Tensor.fromArray(f32round(randNonZero(gen, N)), [N]);
      const r = pro === 'norm'
        ? await gradcheck((a, p, q, k, c) => {
          const [y0, y1] = linearPrologue(a, [p, q], { norm: { weight: k, bias: c, eps: 1e-5 } });
          return add(y0, mul(y1, y1));
        }, [x, w0, w1, g, be])
        : await gradcheck((a, p, bb, k, c) => linearPrologue(a, [p], { norm: { weight: k, bias: c, eps: 1e-5 }, geglu: true, biases: [bb] })[0], [x, w0, bias, g, be]);
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(true);
      [x, w0, w1, g, be, bias].forEach((t) => t.dispose());
    });
  }
});
