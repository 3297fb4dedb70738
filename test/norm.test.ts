import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, randn64, relL2 } from './helpers.js';
import { groupNormRef, groupNormBackwardRef, layerNormRef, layerNormBackwardRef } from './ref/norm.js';
import { poison, allFinite } from './ref/poison.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { groupNorm, layerNorm } from '../src/tensor/ops/norm.js';
import { overrideSettings } from '../src/settings.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { ShapeError } from '../src/errors.js';

beforeAll(setupGpu);
// Each test forces its kernel variant; the setting is restored after the file.
let restore: (() => void) | null = null;
const useVariant = (normVariant: 'serial' | 'wg') => { restore?.(); restore = overrideSettings({ normVariant }); };
afterAll(() => restore?.());

const VARIANTS = ['serial', 'wg'] as const;
const TOL = 1e-5;

async function grads(...ts: (Tensor | null)[]) {
  return Promise.all(ts.map((t) => (t ? t.grad!.toArray() : Promise.resolve(null))));
}

describe('groupNorm', () => {
  for (const variant of VARIANTS) {
    for (const affine of [true, false]) {
      it(`${variant}: [2,6,7,9] 3 groups, affine ${affine}: forward, mean/rstd-based backward vs float64 (relL2 < ${TOL})`, async () => {
        useVariant(variant);
        const gen = new Generator(21);
        const [n, c, h, w, groups, eps] = [2, 6, 7, 9, 3, 1e-6];
        const s = h * w;
        // Offset inputs so the mean is far from 0 (two-pass variance must hold up).
        const xh = f32round(randNonZero(gen, n * c * s).map((v) => 3 + 2 * v));
        const gh = f32round(randNonZero(gen, c, 0.5, 1.5));
        const bh = f32round(randNonZero(gen, c));
        const dyh = f32round(randn64(gen, n * c * s));
        const x = requireGrad(Tensor.fromArray(xh, [n, c, h, w]));
        const g = affine ? requireGrad(Tensor.fromArray(gh, [c])) : null;
        const b = affine ? requireGrad(Tensor.fromArray(bh, [c])) : null;
        poison(x.shape);
        const y = groupNorm(x, groups, { weight: g, bias: b, eps });
        const yv = await y.toArray();
        expect(allFinite(yv)).toBe(true);
        const ref = groupNormRef(xh, n, c, s, groups, eps, affine ? gh : undefined, affine ? bh : undefined);
        const ef = relL2(yv, ref.y);
        poison(x.shape, [c], [n, c]);
        const dy = Tensor.fromArray(dyh, x.shape);
        backward(y, dy);
        const bref = groupNormBackwardRef(xh, dyh, n, c, s, groups, eps, affine ? gh : undefined);
        const [dx, dg, db] = await grads(x, g, b);
        expect(allFinite(dx!)).toBe(true);
        const errs = { fwd: ef, dx: relL2(dx!, bref.dx), dgamma: dg ? relL2(dg, bref.dgamma) : 0, dbeta: db ? relL2(db, bref.dbeta) : 0 };
        console.log(`groupNorm ${variant} affine=${affine}: relL2 ${JSON.stringify(errs)}`);
        for (const e of Object.values(errs)) expect(e).toBeLessThan(TOL);
        [x, g, b, dy, y].forEach((t) => { t?.grad?.dispose(); t?.dispose(); });
      });
    }
    it(`${variant}: rank 3 input [3,4,5], 2 groups, and groups = C`, async () => {
      useVariant(variant);
      const gen = new Generator(22);
      for (const [shape, groups] of [[[3, 4, 5], 2], [[2, 5, 3, 2], 5]] as const) {
        const n = shape[0];
        const c = shape[1];
        const s = shape.slice(2).reduce((a, v) => a * v, 1);
        const xh = f32round(randNonZero(gen, n * c * s));
        const x = Tensor.fromArray(xh, shape);
        const y = groupNorm(x, groups, { eps: 1e-5 });
        expect(relL2(await y.toArray(), groupNormRef(xh, n, c, s, groups, 1e-5).y)).toBeLessThan(TOL);
        [x, y].forEach((t) => t.dispose());
      }
    });
    it(`${variant}: gradcheck (affine)`, async () => {
      useVariant(variant);
      const gen = new Generator(23);
      const x = Tensor.fromArray(f32round(randNonZero(gen, 2 * 4 * 6)), [2, 4, 2, 3]);
      const g = Tensor.fromArray(f32round(randNonZero(gen, 4, 0.5, 1.5)), [4]);
      const b = Tensor.fromArray(f32round(randNonZero(gen, 4)), [4]);
      const r = await gradcheck((a, k, c) => groupNorm(a, 2, { weight: k, bias: c, eps: 1e-5 }), [x, g, b]);
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(true);
      [x, g, b].forEach((t) => t.dispose());
    });
  }
  it('rejects groups not dividing C and mismatched weight', () => {
    const x = Tensor.empty([1, 6, 2, 2]);
    expect(() => groupNorm(x, 4)).toThrow(ShapeError);
    const w = Tensor.empty([5]);
    expect(() => groupNorm(x, 3, { weight: w, bias: w })).toThrow(/weight/);
    [x, w].forEach((t) => t.dispose());
  });
});

describe('layerNorm', () => {
  for (const variant of VARIANTS) {
    for (const affine of [true, false]) {
      it(`${variant}: [3,5,37] (ragged D), affine ${affine}: forward and backward vs float64 (relL2 < ${TOL})`, async () => {
        useVariant(variant);
        const gen = new Generator(31);
        const [rows, d, eps] = [15, 37, 1e-5];
        const xh = f32round(randNonZero(gen, rows * d).map((v) => 2 + v));
        const gh = f32round(randNonZero(gen, d, 0.5, 1.5));
        const bh = f32round(randNonZero(gen, d));
        const dyh = f32round(randn64(gen, rows * d));
        const x = requireGrad(Tensor.fromArray(xh, [3, 5, d]));
        const g = affine ? requireGrad(Tensor.fromArray(gh, [d])) : null;
        const b = affine ? requireGrad(Tensor.fromArray(bh, [d])) : null;
        poison(x.shape);
        const y = layerNorm(x, { weight: g, bias: b, eps });
        const yv = await y.toArray();
        expect(allFinite(yv)).toBe(true);
        const ef = relL2(yv, layerNormRef(xh, rows, d, eps, affine ? gh : undefined, affine ? bh : undefined).y);
        poison(x.shape, [d]);
        const dy = Tensor.fromArray(dyh, x.shape);
        backward(y, dy);
        const bref = layerNormBackwardRef(xh, dyh, rows, d, eps, affine ? gh : undefined);
        const [dx, dg, db] = await grads(x, g, b);
        expect(allFinite(dx!)).toBe(true);
        const errs = { fwd: ef, dx: relL2(dx!, bref.dx), dgamma: dg ? relL2(dg, bref.dgamma) : 0, dbeta: db ? relL2(db, bref.dbeta) : 0 };
        console.log(`layerNorm ${variant} affine=${affine}: relL2 ${JSON.stringify(errs)}`);
        for (const e of Object.values(errs)) expect(e).toBeLessThan(TOL);
        [x, g, b, dy, y].forEach((t) => { t?.grad?.dispose(); t?.dispose(); });
      });
    }
    it(`${variant}: gradcheck (affine)`, async () => {
      useVariant(variant);
      const gen = new Generator(33);
      const x = Tensor.fromArray(f32round(randNonZero(gen, 3 * 7)), [3, 7]);
      const g = Tensor.fromArray(f32round(randNonZero(gen, 7, 0.5, 1.5)), [7]);
      const b = Tensor.fromArray(f32round(randNonZero(gen, 7)), [7]);
      const r = await gradcheck((a, k, c) => layerNorm(a, { weight: k, bias: c, eps: 1e-5 }), [x, g, b]);
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(true);
      [x, g, b].forEach((t) => t.dispose());
    });
  }
});
