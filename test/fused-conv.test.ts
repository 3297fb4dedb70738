// conv2d's fused epilogue: y = conv(x, w) + bias + shift[n, o] + residual in the convolution's own launch
// (every variant), forward and gradients (dx, dw, db, dshift = Σ_pixels dy, dresidual = dy) against float64,
// gradcheck, and the unfused baseline (settings.fuse off) giving the same values.
import { afterAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, relL2 } from './helpers.js';
import { conv2dRef, conv2dBackwardRef, convOut, type ConvGeom } from './ref/conv.js';
import { poison, allFinite } from './ref/poison.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { conv2d, type Conv2dVariant } from '../src/tensor/ops/conv2d.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { ShapeError } from '../src/errors.js';
import { overrideSettings } from '../src/settings.js';

await setupGpu();
let restore: (() => void) | null = null;
afterAll(() => restore?.());

const G: ConvGeom = { n: 2, c: 5, h: 6, w: 7, o: 9, kh: 3, kw: 3, sh: 1, sw: 1, pad: [1, 1, 1, 1] };
const [OH, OW] = convOut(G);
const YSHAPE = [G.n, G.o, OH, OW];

describe('conv2d epilogue (shift, residual)', () => {
  for (const [variant, fuse] of [['sg', true], ['rb', true], ['tiled', true], ['sg', false]] as [Conv2dVariant, boolean][]) {
    for (const [useShift, useRes] of [[true, true], [true, false], [false, true]]) {
      it(`${variant}${fuse ? '' : ' unfused'}: shift ${useShift}, residual ${useRes}: forward and all gradients vs float64 (relL2 < 1e-5)`, async () => {
        restore?.();
        restore = overrideSettings({ fuse });
        const gen = new Generator(61);
        const xh = f32round(randNonZero(gen, G.n * G.c * G.h * G.w));
        const wh = f32round(randNonZero(gen, G.o * G.c * 9, 0.05, 0.5));
        const bh = f32round(randNonZero(gen, G.o));
        const sh = f32round(randNonZero(gen, G.n * G.o));
        const rh = f32round(randNonZero(gen, G.n * G.o * OH * OW));
        const dyh = f32round(randNonZero(gen, G.n * G.o * OH * OW));
        const x = requireGrad(Tensor.fromArray(xh, [G.n, G.c, G.h, G.w]));
        const w = requireGrad(Tensor.fromArray(wh, [G.o, G.c, 3, 3]));
        const b = requireGrad(Tensor.fromArray(bh, [G.o]));
        const s = useShift ? requireGrad(Tensor.fromArray(sh, [G.n, G.o])) : undefined;
        const r = useRes ? requireGrad(Tensor.fromArray(rh, YSHAPE)) : undefined;
        poison(YSHAPE);
        const y = conv2d(x, w, b, { padding: 1, variant, shift: s, residual: r });
        const yv = await y.toArray();
        expect(allFinite(yv)).toBe(true);
        const ref = conv2dRef(G, xh, wh, bh);
        const pix = OH * OW;
        for (let i = 0; i < ref.length; i++) ref[i] += (useShift ? sh[Math.floor(i / pix)] : 0) + (useRes ? rh[i] : 0);
        const dy = Tensor.fromArray(dyh, YSHAPE);
        backward(y, dy);
        const bref = conv2dBackwardRef(G, xh, wh, dyh);
        const dshift = new Float64Array(G.n * G.o);
        for (let i = 0; i < dyh.length; i++) dshift[Math.floor(i / pix)] += dyh[i];
        const errs: Record<string, number> = {
          fwd: relL2(yv, ref), dx: relL2(await x.grad!.toArray(), bref.dx), dw: relL2(await w.grad!.toArray(), bref.dw),
          db: relL2(await b.grad!.toArray(), bref.db),
        };
        if (s) errs.dshift = relL2(await s.grad!.toArray(), dshift);
        if (r) errs.dres = relL2(await r.grad!.toArray(), dyh);
        for (const e of Object.values(errs)) expect(e).toBeLessThan(1e-5);
        [x, w, b, s, r, dy, y].forEach((t) => { t?.grad?.dispose(); t?.dispose(); });
      });
    }
  }

  it('gradcheck: conv with shift and residual (sg), shift requiring grad while the bias does not', async () => {
    restore?.();
    restore = overrideSettings({ fuse: true });
    const gen = new Generator(62);
    const g = { n: 2, c: 2, h: 3, w: 4, o: 3 };
    const x = Tensor.fromArray(f32round(randNonZero(gen, g.n * g.c * g.h * g.w)), [g.n, g.c, g.h, g.w]);
    const w = Tensor.fromArray(f32round(randNonZero(gen, g.o * g.c * 9, 0.1, 0.5)), [g.o, g.c, 3, 3]);
    const b = Tensor.fromArray(f32round(randNonZero(gen, g.o)), [g.o]);
    const s = Tensor.fromArray(f32round(randNonZero(gen, g.n * g.o)), [g.n, g.o]);
    const r = Tensor.fromArray(f32round(randNonZero(gen, g.n * g.o * g.h * g.w)), [g.n, g.o, g.h, g.w]);
    const res = await gradcheck((a, k, sh, rs) => conv2d(a, k, b, { padding: 1, shift: sh, residual: rs }), [x, w, s, r]);
    expect(res.failures).toEqual([]);
    expect(res.ok).toBe(true);
    [x, w, b, s, r].forEach((t) => t.dispose());
  });

  it('rejects a shift or residual of the wrong shape', () => {
    const x = Tensor.empty([2, 3, 4, 4]);
    const w = Tensor.empty([5, 3, 3, 3]);
    const bad = Tensor.empty([2, 4]);
    expect(() => conv2d(x, w, null, { padding: 1, shift: bad })).toThrow(ShapeError);
    expect(() => conv2d(x, w, null, { padding: 1, residual: bad })).toThrow(/residual/);
    [x, w, bad].forEach((t) => t.dispose());
  });
});
