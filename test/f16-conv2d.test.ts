// conv2d on the fragment kernels (kernels/conv2d_f16.wgsl): f16 operands with f32 accumulation, and
// the f32 split-K 'gemm' variant (f32 staging), against float64. Tolerances: test/ref/half.ts (f16)
// and 1e-5 (f32, as the other conv2d variants).
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { setupGpu, randNonZero, relL2 } from './helpers.js';
import { conv2dRef, conv2dBackwardRef, convOut, type ConvGeom } from './ref/conv.js';
import { f16round, F16_TOL, F32_ACC_TOL } from './ref/half.js';
import { allFinite } from './ref/poison.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { conv2dFrag, type ConvGeometry } from '../src/tensor/ops/conv2d_f16.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { smShapes, tileId } from '../src/tensor/plan/frag.js';

const g0 = await setupGpu();
const canRun = g0.acquired.hasF16 && g0.acquired.hasSubgroups;
const sm = canRun ? smShapes(g0) : [];
beforeAll(setupGpu);
// Each case compiles fresh pipelines: lavapipe's LLVM takes seconds per fragment kernel (minutes on a loaded machine).
vi.setConfig({ testTimeout: 600_000 });

const geom = (g: ConvGeom): ConvGeometry => {
  const [oh, ow] = convOut(g);
  return { ...g, oh, ow };
};

interface Case { name: string; g: ConvGeom; bias: boolean; tile?: string }
const base = { n: 2, c: 5, h: 7, w: 9, o: 6 };
const CASES: Case[] = [
  { name: '3x3 stride 1 pad 1', g: { ...base, kh: 3, kw: 3, sh: 1, sw: 1, pad: [1, 1, 1, 1] }, bias: true },
  { name: '3x3 stride 2 pad [0,1,0,1] (VAE downsampler)', g: { ...base, kh: 3, kw: 3, sh: 2, sw: 2, pad: [0, 1, 0, 1] }, bias: true },
  { name: '1x1 no bias, C=17 O=21', g: { n: 1, c: 17, h: 5, w: 6, o: 21, kh: 1, kw: 1, sh: 1, sw: 1, pad: [0, 0, 0, 0] }, bias: false },
  { name: '2x3 stride [2,1] pad [1,0], split-K 3 (forced tile)', g: { ...base, c: 9, kh: 2, kw: 3, sh: 2, sw: 1, pad: [1, 1, 0, 0] }, bias: true, tile: 'simt4x4x4/w4x4/t1x1/k8/s3' },
];

function data(g: ConvGeom, seed: number) {
  const gen = new Generator(seed);
  const [oh, ow] = convOut(g);
  return {
    x: randNonZero(gen, g.n * g.c * g.h * g.w),
    w: randNonZero(gen, g.o * g.c * g.kh * g.kw, 0.05, 0.5),
    b: Float64Array.from(Float32Array.from(randNonZero(gen, g.o))),
    dy: randNonZero(gen, g.n * g.o * oh * ow),
  };
}

describe.skipIf(!canRun)('conv2d f16 (fragments)', () => {
  for (const { name, g, bias, tile } of CASES) {
    it(`${name}: forward relL2 < ${F16_TOL} vs float64, < ${F32_ACC_TOL} on the f16-rounded operands; f32 gradients likewise`, async () => {
      const d = data(g, 21);
      const x = requireGrad(Tensor.fromArray(d.x, [g.n, g.c, g.h, g.w], 'f16'));
      const w = requireGrad(Tensor.fromArray(d.w, [g.o, g.c, g.kh, g.kw], 'f16'));
      const b = bias ? requireGrad(Tensor.fromArray(d.b, [g.o])) : null;
      const y = conv2dFrag(x, w, b, geom(g), { out: 'f32', tile });
      const yv = await y.toArray();
      expect(allFinite(yv)).toBe(true);
      const rx = f16round(d.x);
      const rw = f16round(d.w);
      const eLoose = relL2(yv, conv2dRef(g, d.x, d.w, bias ? d.b : undefined));
      const eTight = relL2(yv, conv2dRef(g, rx, rw, bias ? d.b : undefined));
      backward(y, Tensor.fromArray(d.dy, y.shape));
      const ref = conv2dBackwardRef(g, rx, rw, f16round(d.dy));
      const e = { fwd: eLoose, fwdRounded: eTight, dx: relL2(await x.grad!.toArray(), ref.dx), dw: relL2(await w.grad!.toArray(), ref.dw), db: b ? relL2(await b.grad!.toArray(), conv2dBackwardRef(g, rx, rw, d.dy).db) : 0 };
      console.log(`conv2d f16 ${name}: relL2 ${JSON.stringify(e)}`);
      expect(x.grad!.dtype).toBe('f32');
      expect(e.fwd).toBeLessThan(F16_TOL);
      for (const k of ['fwdRounded', 'dx', 'dw', 'db'] as const) expect(e[k], k).toBeLessThan(F32_ACC_TOL);
    });
  }

  it('f16 output (rounded once from the f32 sum)', async () => {
    const { g } = CASES[0];
    const d = data(g, 4);
    const y = conv2dFrag(Tensor.fromArray(d.x, [g.n, g.c, g.h, g.w], 'f16'), Tensor.fromArray(d.w, [g.o, g.c, g.kh, g.kw], 'f16'), Tensor.fromArray(d.b, [g.o]), geom(g));
    expect(y.dtype).toBe('f16');
    const e = relL2(await y.toArray(), f16round(conv2dRef(g, f16round(d.x), f16round(d.w), d.b)));
    expect(e).toBeLessThan(2 ** -11);
  });
});

describe.skipIf(!g0.acquired.hasSubgroups)('conv2d f32 split-K variant (f32 staging)', () => {
  it('forward and backward vs float64 (relL2 < 1e-5) and gradcheck', async () => {
    const g: ConvGeom = { n: 2, c: 4, h: 6, w: 5, o: 7, kh: 3, kw: 3, sh: 1, sw: 1, pad: [1, 1, 1, 1] };
    const d = data(g, 8);
    const rx = Float64Array.from(Float32Array.from(d.x));
    const rw = Float64Array.from(Float32Array.from(d.w));
    const x = requireGrad(Tensor.fromArray(rx, [g.n, g.c, g.h, g.w]));
    const w = requireGrad(Tensor.fromArray(rw, [g.o, g.c, g.kh, g.kw]));
    const b = requireGrad(Tensor.fromArray(d.b, [g.o]));
    const opts = { staging: 'f32' as const, out: 'f32' as const, tile: 'simt4x4x4/w4x4/t1x1/k8/s2' };
    const y = conv2dFrag(x, w, b, geom(g), opts);
    const ef = relL2(await y.toArray(), conv2dRef(g, rx, rw, d.b));
    const rdy = Float64Array.from(Float32Array.from(d.dy));
    backward(y, Tensor.fromArray(rdy, y.shape));
    const ref = conv2dBackwardRef(g, rx, rw, rdy);
    const e = { fwd: ef, dx: relL2(await x.grad!.toArray(), ref.dx), dw: relL2(await w.grad!.toArray(), ref.dw), db: relL2(await b.grad!.toArray(), ref.db) };
    console.log(`conv2d f32 gemm: relL2 ${JSON.stringify(e)}`);
    for (const [k, v] of Object.entries(e)) expect(v, k).toBeLessThan(1e-5);
    const gs: ConvGeom = { n: 1, c: 2, h: 4, w: 3, o: 3, kh: 3, kw: 2, sh: 2, sw: 1, pad: [1, 0, 1, 0] };
    const ds = data(gs, 9);
    const r = await gradcheck(
      (xx, ww, bb) => conv2dFrag(xx, ww, bb, geom(gs), opts),
      [requireGrad(Tensor.fromArray(ds.x, [1, 2, 4, 3])), requireGrad(Tensor.fromArray(ds.w, [3, 2, 3, 2])), requireGrad(Tensor.fromArray(ds.b, [3]))],
    );
    expect(r.ok, JSON.stringify(r.failures?.slice(0, 3))).toBe(true);
  });
});

describe.skipIf(sm.length === 0)('conv2d on subgroup matrices (tensor cores)', () => {
  for (const [FM, FN, FK] of sm) {
    for (const split of [1, 3]) {
      const tile = tileId({ unit: 'sm', FM, FN, FK, WM: 2, WN: 2, TM: 1, TN: 2, BK: Math.max(32, FK), split });
      it(`${tile}: forward, dx, dw relL2 < 1e-4 vs float64 on the f16-rounded operands`, async () => {
        const g: ConvGeom = { n: 2, c: 37, h: 9, w: 11, o: 45, kh: 3, kw: 3, sh: 1, sw: 1, pad: [1, 1, 1, 1] };
        const d = data(g, 31);
        const x = requireGrad(Tensor.fromArray(d.x, [g.n, g.c, g.h, g.w], 'f16'));
        const w = requireGrad(Tensor.fromArray(d.w, [g.o, g.c, g.kh, g.kw], 'f16'));
        const y = conv2dFrag(x, w, Tensor.fromArray(d.b, [g.o]), geom(g), { out: 'f32', tile });
        const rx = f16round(d.x);
        const rw = f16round(d.w);
        const ef = relL2(await y.toArray(), conv2dRef(g, rx, rw, d.b));
        backward(y, Tensor.fromArray(d.dy, y.shape));
        const ref = conv2dBackwardRef(g, rx, rw, f16round(d.dy));
        const e = { fwd: ef, dx: relL2(await x.grad!.toArray(), ref.dx), dw: relL2(await w.grad!.toArray(), ref.dw) };
        console.log(`conv2d ${tile}: relL2 ${JSON.stringify(e)}`);
        for (const [k, v] of Object.entries(e)) expect(v, k).toBeLessThan(1e-4);
      });
    }
  }
});
