import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2, randn64, f32round } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { gpu } from '../src/gpu/runtime.js';
import { geglu } from '../src/tensor/ops/geglu.js';
import { chunk } from '../src/tensor/ops/layout.js';
import { gelu, mul } from '../src/tensor/ops/elementwise.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { erf64 } from './ref/special.js';
import { allFinite, poison } from './ref/poison.js';

beforeAll(setupGpu);

const Phi = (g: number) => 0.5 * (1 + erf64(g / Math.SQRT2));
const phi = (g: number) => Math.exp(-0.5 * g * g) / Math.sqrt(2 * Math.PI);

/** float64 GEGLU over rows of 2·D: value first, gate second. */
function gegluRef(h: ArrayLike<number>, rows: number, D: number) {
  const y = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) for (let j = 0; j < D; j++) {
    const v = h[r * 2 * D + j], g = h[r * 2 * D + D + j];
    y[r * D + j] = v * g * Phi(g);
  }
  return y;
}

function gegluBackwardRef(h: ArrayLike<number>, dy: ArrayLike<number>, rows: number, D: number) {
  const dh = new Float64Array(rows * 2 * D);
  for (let r = 0; r < rows; r++) for (let j = 0; j < D; j++) {
    const v = h[r * 2 * D + j], g = h[r * 2 * D + D + j], d = dy[r * D + j];
    dh[r * 2 * D + j] = d * g * Phi(g);
    dh[r * 2 * D + D + j] = d * v * (Phi(g) + g * phi(g));
  }
  return dh;
}

describe('geglu', () => {
  // Ragged: D not a multiple of 4, row counts not multiples of the 256-wide workgroup; D = 1; a 1-D input.
  const cases: number[][] = [[3, 5, 2 * 13], [7, 2 * 1], [2 * 37], [1, 300, 2 * 3], [2, 3, 2 * 130]];
  for (const shape of cases) {
    it(`[${shape}] → value·gelu(gate): forward and backward vs float64 (relL2 < 1e-6), one launch each, finite`, async () => {
      const gen = new Generator(shape.reduce((a, b) => a * 31 + b, 7));
      const D = shape[shape.length - 1] / 2;
      const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const h64 = f32round(randn64(gen, rows * 2 * D, 2));   // gates over ±6: both tails of erf
      const dy64 = f32round(randn64(gen, rows * D));
      const h = requireGrad(Tensor.fromArray(h64, shape));
      const outShape = [...shape.slice(0, -1), D];
      poison(outShape, shape);
      const g = gpu();
      const orig = g.dispatch;
      const names: string[] = [];
      g.dispatch = function (this: typeof g, d) { if (d.kernel.name !== 'check.finite') names.push(d.kernel.name); return orig.call(this, d); };
      let y: Tensor;
      try { y = geglu(h); } finally { g.dispatch = orig; }
      expect(names).toEqual(['geglu.forward']);
      expect(y.shape).toEqual(outShape);
      const yh = await y.toArray();
      expect(allFinite(yh)).toBe(true);
      const ef = relL2(yh, gegluRef(h64, rows, D));
      expect(ef).toBeLessThan(1e-6);
      poison(shape);
      g.dispatch = function (this: typeof g, d) { if (d.kernel.name !== 'check.finite') names.push(d.kernel.name); return orig.call(this, d); };
      try { backward(y, Tensor.fromArray(dy64, outShape)); } finally { g.dispatch = orig; }
      expect(names).toEqual(['geglu.forward', 'geglu.backward']);
      const dh = await h.grad!.toArray();
      expect(allFinite(dh)).toBe(true);
      const eb = relL2(dh, gegluBackwardRef(h64, dy64, rows, D));
      expect(eb).toBeLessThan(1e-6);
      console.log(`geglu [${shape}]: relL2 y ${ef.toExponential(2)}, dh ${eb.toExponential(2)}`);
    });
  }

  it('matches chunk → gelu → mul (the composite it replaces)', async () => {
    const gen = new Generator(5);
    const h = Tensor.fromArray(f32round(randn64(gen, 4 * 2 * 9)), [4, 18]);
    const [v, gt] = chunk(h, 2, -1);
    const ref = await mul(v, gelu(gt)).toArray();
    expect(relL2(await geglu(h).toArray(), ref)).toBeLessThan(1e-6);
  });

  it('gradcheck (eps 1e-2, atol 2e-3, rtol 2e-2)', async () => {
    const gen = new Generator(9);
    const h = Tensor.fromArray(f32round(randn64(gen, 3 * 2 * 5)), [3, 10]);
    const r = await gradcheck((t) => geglu(t), [h], { maxElements: 30 });
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('rejects an odd last dim and non-f32', () => {
    expect(() => geglu(Tensor.empty([2, 5]))).toThrow(/geglu/);
    expect(() => geglu(Tensor.empty([2, 4], 'i32'))).toThrow(/geglu/);
  });
});
