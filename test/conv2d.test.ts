import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, relL2 } from './helpers.js';
import { conv2dRef, conv2dBackwardRef, convOut, type ConvGeom } from './ref/conv.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { poison, allFinite } from './ref/poison.js';
import { conv2d, type Conv2dVariant } from '../src/tensor/ops/conv2d.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { ShapeError } from '../src/errors.js';
import { gpu } from '../src/gpu/runtime.js';

const G = await setupGpu();
beforeAll(setupGpu);


interface Case { name: string; g: ConvGeom; bias: boolean }
const base = { n: 2, c: 5, h: 7, w: 9, o: 6 };
const CASES: Case[] = [
  { name: '3x3 stride 1 pad 1', g: { ...base, kh: 3, kw: 3, sh: 1, sw: 1, pad: [1, 1, 1, 1] }, bias: true },
  { name: '3x3 stride 2 pad 1', g: { ...base, kh: 3, kw: 3, sh: 2, sw: 2, pad: [1, 1, 1, 1] }, bias: true },
  { name: '3x3 stride 2 pad [0,1,0,1] (VAE downsampler)', g: { ...base, kh: 3, kw: 3, sh: 2, sw: 2, pad: [0, 1, 0, 1] }, bias: true },
  { name: '1x1 no bias', g: { ...base, kh: 1, kw: 1, sh: 1, sw: 1, pad: [0, 0, 0, 0] }, bias: false },
  { name: '2x3 stride [2,1] pad [1,0]', g: { ...base, c: 3, kh: 2, kw: 3, sh: 2, sw: 1, pad: [1, 1, 0, 0] }, bias: true },
  { name: '3x3 stride 1 pad 0, C=17 O=70 (row tails)', g: { n: 1, c: 17, h: 6, w: 5, o: 70, kh: 3, kw: 3, sh: 1, sw: 1, pad: [0, 0, 0, 0] }, bias: true },
];
const VARIANTS: Conv2dVariant[] = ['sg', 'rb', 'tiled'];

describe('conv2d', () => {
  for (const variant of VARIANTS) {
    for (const { name, g, bias } of CASES) {
      it(`${variant}: ${name}: forward and backward match float64 (relL2 < 1e-5)`, async () => {
        const gen = new Generator(11);
        const [oh, ow] = convOut(g);
        const xh = f32round(randNonZero(gen, g.n * g.c * g.h * g.w));
        const wh = f32round(randNonZero(gen, g.o * g.c * g.kh * g.kw, 0.05, 0.5));
        const bh = f32round(randNonZero(gen, g.o));
        const dyh = f32round(randNonZero(gen, g.n * g.o * oh * ow));
        const x = requireGrad(Tensor.fromArray(xh, [g.n, g.c, g.h, g.w]));
        const w = requireGrad(Tensor.fromArray(wh, [g.o, g.c, g.kh, g.kw]));
        const b = bias ? requireGrad(Tensor.fromArray(bh, [g.o])) : null;
        const yShape = [g.n, g.o, oh, ow];
        poison(yShape);
        const y = conv2d(x, w, b, { stride: [g.sh, g.sw], padding: g.pad, variant });
        expect(y.shape).toEqual(yShape);
        const yv = await y.toArray();
        expect(allFinite(yv)).toBe(true);
        const yRef = conv2dRef(g, xh, wh, bias ? bh : undefined);
        const ef = relL2(yv, yRef);
        expect(ef).toBeLessThan(1e-5);

        poison(x.shape, w.shape);
        const dy = Tensor.fromArray(dyh, yShape);
        backward(y, dy);
        const ref = conv2dBackwardRef(g, xh, wh, dyh);
        const dx = await x.grad!.toArray();
        const dw = await w.grad!.toArray();
        expect(allFinite(dx) && allFinite(dw)).toBe(true);
        const errs = { fwd: ef, dx: relL2(dx, ref.dx), dw: relL2(dw, ref.dw), db: 0 };
        if (b) errs.db = relL2(await b.grad!.toArray(), ref.db);
        console.log(`conv2d ${variant} ${name}: relL2 ${JSON.stringify(errs)}`);
        expect(errs.dx).toBeLessThan(1e-5);
        expect(errs.dw).toBeLessThan(1e-5);
        expect(errs.db).toBeLessThan(1e-5);
        for (const t of [x, w, b, dy, y]) { t?.grad?.dispose(); t?.dispose(); }
      });
    }
  }

  for (const variant of VARIANTS) {
    it(`${variant}: gradcheck (3x3 stride 2, pad [0,1,0,1], bias)`, async () => {
      const gen = new Generator(3);
      const x = Tensor.fromArray(f32round(randNonZero(gen, 2 * 2 * 5 * 4)), [2, 2, 5, 4]);
      const w = Tensor.fromArray(f32round(randNonZero(gen, 3 * 2 * 9, 0.1, 0.6)), [3, 2, 3, 3]);
      const b = Tensor.fromArray(f32round(randNonZero(gen, 3)), [3]);
      const r = await gradcheck((a, k, c) => conv2d(a, k, c, { stride: 2, padding: [0, 1, 0, 1], variant }), [x, w, b]);
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(true);
      [x, w, b].forEach((t) => t.dispose());
    });
  }

  it('rejects mismatched channels and bias', () => {
    const x = Tensor.empty([1, 3, 4, 4]);
    const w = Tensor.empty([2, 4, 3, 3]);
    expect(() => conv2d(x, w)).toThrow(ShapeError);
    const w2 = Tensor.empty([2, 3, 3, 3]);
    expect(() => conv2d(x, w2, Tensor.empty([3]))).toThrow(/bias/);
    [x, w, w2].forEach((t) => t.dispose());
  });
});

// Convolutions of ≥ 2^24 multiply-adds on the 'sg' variant run through patch buffers and blocked_vab products
// (src/tensor/ops/conv2d.ts): the forward as im2col + product, dx as product + col2im, dw as im2col_t + product
// (+ a sum over images) when the output pixel count is a multiple of 4, else dw_sg.
describe.skipIf(!G.hasSubgroups8)('conv2d through patch buffers and products (lavapipe)', () => {
  const big: { name: string; g: ConvGeom; fwd: string[]; bwd: string[] }[] = [
    {
      name: '3x3 stride 1 pad 1, 27×31 pixels (dw_sg: 837 is not a multiple of 4), C=24 O=52',
      g: { n: 2, c: 24, h: 27, w: 31, o: 52, kh: 3, kw: 3, sh: 1, sw: 1, pad: [1, 1, 1, 1] },
      fwd: ['conv2d.im2col', 'matmul.blocked_vab'], bwd: ['conv2d.col2im', 'conv2d.dw_sg'],
    },
    {
      name: '3x3 stride 2 pad [0,1,0,1] (the pad row and column are read), 20×18 pixels, C=16 O=96',
      g: { n: 4, c: 16, h: 40, w: 36, o: 96, kh: 3, kw: 3, sh: 2, sw: 2, pad: [0, 1, 0, 1] },
      fwd: ['conv2d.im2col', 'matmul.blocked_vab'], bwd: ['conv2d.col2im', 'conv2d.im2col_t'],
    },
    {
      name: '3x2 stride [2,1] pad [2,0,1,1] (every axis differs), 17×32 pixels, C=32 O=64',
      g: { n: 4, c: 32, h: 34, w: 31, o: 64, kh: 3, kw: 2, sh: 2, sw: 1, pad: [2, 0, 1, 1] },
      fwd: ['conv2d.im2col', 'matmul.blocked_vab'], bwd: ['conv2d.col2im', 'conv2d.im2col_t'],
    },
    {
      name: 'one image (dw without the sum over images), 3x3 pad 1, 32×32 pixels, C=64 O=64',
      g: { n: 1, c: 64, h: 32, w: 32, o: 64, kh: 3, kw: 3, sh: 1, sw: 1, pad: [1, 1, 1, 1] },
      fwd: ['conv2d.im2col', 'matmul.blocked_vab'], bwd: ['conv2d.col2im', 'conv2d.im2col_t'],
    },
  ];
  for (const { name, g, fwd, bwd } of big) {
    it(`${name}: forward (bias, residual), dx and dw vs float64 (relL2 < 1e-5)`, async () => {
      const gen = new Generator(12);
      const [oh, ow] = convOut(g);
      const xh = f32round(randNonZero(gen, g.n * g.c * g.h * g.w));
      const wh = f32round(randNonZero(gen, g.o * g.c * g.kh * g.kw, 0.05, 0.5));
      const bh = f32round(randNonZero(gen, g.o));
      const rh = f32round(randNonZero(gen, g.n * g.o * oh * ow));
      const dyh = f32round(randNonZero(gen, g.n * g.o * oh * ow));
      const x = requireGrad(Tensor.fromArray(xh, [g.n, g.c, g.h, g.w]));
      const w = requireGrad(Tensor.fromArray(wh, [g.o, g.c, g.kh, g.kw]));
      const b = Tensor.fromArray(bh, [g.o]);
      const r = Tensor.fromArray(rh, [g.n, g.o, oh, ow]);
      const dy = Tensor.fromArray(dyh, [g.n, g.o, oh, ow]);
      const names: string[] = [];
      const orig = gpu().dispatch.bind(gpu());
      gpu().dispatch = (d) => { names.push(d.kernel.name); orig(d); };
      let y: Tensor;
      let fwdNames: string[];
      try {
        y = conv2d(x, w, b, { stride: [g.sh, g.sw], padding: g.pad, residual: r, variant: 'sg' });
        fwdNames = names.splice(0);
        backward(y, dy);
      } finally {
        gpu().dispatch = orig;
      }
      expect(fwdNames).toEqual(fwd);
      for (const k of bwd) expect(names).toContain(k);
      const ref = conv2dRef(g, xh, wh, bh).map((v, i) => v + rh[i]);
      expect(relL2(await y.toArray(), ref)).toBeLessThan(1e-5);
      const gref = conv2dBackwardRef(g, xh, wh, dyh);
      expect(relL2(await x.grad!.toArray(), gref.dx)).toBeLessThan(1e-5);
      expect(relL2(await w.grad!.toArray(), gref.dw)).toBeLessThan(1e-5);
      for (const t of [x, w, b, r, y, dy]) { t.grad?.dispose(); t.dispose(); }
    });
  }
});

describe('conv2d past 65,535 column tiles', () => {
  // sg's forward holds two pixels per lane (tiles of 128 columns), tiled's tiles are 64 columns: both fold here.
  it('folds the grid (1×1 conv over 2,900×2,900 pixels: 65,704 tiles of 128, 131,407 of 64) and writes every output', async () => {
    const H = 2900, W = 2900;
    const gen = new Generator(31);
    const xh = new Float32Array(2 * H * W);
    for (let i = 0; i < xh.length; i++) xh[i] = 0.5 + gen.uniform();
    const x = Tensor.fromArray(xh, [1, 2, H, W]);
    const w = Tensor.fromArray([0.75, -1.25], [1, 2, 1, 1]);
    const b = Tensor.fromArray([0.5], [1]);
    for (const variant of ['sg', 'tiled'] as const) {
      poison([1, 1, H, W]);
      const y = await conv2d(x, w, b, { variant }).toArray();
      let worst = 0;
      for (let i = 0; i < H * W; i++) worst = Math.max(worst, Math.abs(y[i] - (0.75 * xh[i] - 1.25 * xh[H * W + i] + 0.5)));
      expect(worst, variant).toBeLessThan(1e-5);
    }
  });
});
