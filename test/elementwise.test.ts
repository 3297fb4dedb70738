import { beforeAll, describe, expect, it } from 'vitest';
import { poison } from './ref/poison.js';
import { setupGpu, relL2, randNonZero, f32round } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import * as E from '../src/tensor/ops/elementwise.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { erf64 } from './ref/special.js';

beforeAll(setupGpu);

const erf = erf64; // accurate to ~1e-16 (series / continued fraction), unlike the kernel's 1.2e-7 fit
const sig = (x: number) => 1 / (1 + Math.exp(-x));

const REF: Record<string, (x: number) => number> = {
  neg: (x) => -x, exp: Math.exp, silu: (x) => x * sig(x), sigmoid: sig, tanh: Math.tanh, square: (x) => x * x,
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  geluTanh: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  quickGelu: (x) => x * sig(1.702 * x), abs: Math.abs, relu: (x) => Math.max(x, 0),
};

describe('elementwise', () => {
  it('the float64 erf reference is accurate (known values)', () => {
    // erf(x) to 16 digits (Abramowitz & Stegun / mpmath values)
    const known: [number, number][] = [[0.1, 0.1124629160182849], [0.5, 0.5204998778130465], [1, 0.8427007929497149],
      [2, 0.9953222650189527], [2.999, 0.9999777698314002], [3, 0.9999779095030014], [3.5, 0.9999992569016276], [5, 0.9999999999984626]];
    for (const [x, v] of known) {
      expect(Math.abs(erf64(x) - v), `erf(${x})`).toBeLessThan(2e-15);
      expect(erf64(-x)).toBe(-erf64(x));
    }
  });

  it('unary ops match float64 at a ragged size', async () => {
    const gen = new Generator(1);
    const x = f32round(randNonZero(gen, 1003, 0.05, 3));
    const t = Tensor.fromArray(x, [17, 59]);
    for (const [op, f] of Object.entries(REF)) {
      poison([17, 59]); // the output starts as NaN: a missed write shows
      const y = await E.unary(op as E.UnaryOp, t).toArray();
      const ref = Array.from(x, f);
      expect(relL2(y, ref), op).toBeLessThan(1e-6);
    }
  });

  it('binary ops broadcast like NumPy', async () => {
    const gen = new Generator(2);
    const a = f32round(randNonZero(gen, 3 * 5 * 7));
    const b = f32round(randNonZero(gen, 5 * 1));
    const ta = Tensor.fromArray(a, [3, 5, 7]);
    const tb = Tensor.fromArray(b, [5, 1]);
    const ops: Record<string, (p: number, q: number) => number> = { add: (p, q) => p + q, sub: (p, q) => p - q, mul: (p, q) => p * q, div: (p, q) => p / q };
    for (const [op, f] of Object.entries(ops)) {
      poison([3, 5, 7]);
      const y = await E.binary(op as E.BinaryOp, ta, tb).toArray();
      const ref = new Float64Array(105);
      for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) for (let k = 0; k < 7; k++) ref[(i * 5 + j) * 7 + k] = f(a[(i * 5 + j) * 7 + k], b[j]);
      expect(relL2(y, ref), op).toBeLessThan(1e-6);
    }
  });

  it('backward of a broadcast mul sums over the broadcast axes', async () => {
    const gen = new Generator(3);
    const a = f32round(randNonZero(gen, 4 * 6));
    const b = f32round(randNonZero(gen, 6));
    const ta = requireGrad(Tensor.fromArray(a, [4, 6]));
    const tb = requireGrad(Tensor.fromArray(b, [6]));
    backward(sumAll(E.mul(ta, tb)));
    const gb = await tb.grad!.toArray();
    const ga = await ta.grad!.toArray();
    const refB = Array.from({ length: 6 }, (_, j) => a[j] + a[6 + j] + a[12 + j] + a[18 + j]);
    const refA = Array.from({ length: 24 }, (_, i) => b[i % 6]);
    expect(relL2(gb, refB)).toBeLessThan(1e-6);
    expect(relL2(ga, refA)).toBeLessThan(1e-6);
  });
});

/** out[i] = f(a[ia], b[ib]) with NumPy broadcasting of aShape and bShape (float64). */
function broadcastRef(a: ArrayLike<number>, aShape: number[], b: ArrayLike<number>, bShape: number[], f: (p: number, q: number) => number) {
  const rank = Math.max(aShape.length, bShape.length);
  const pa = [...new Array(rank - aShape.length).fill(1), ...aShape];
  const pb = [...new Array(rank - bShape.length).fill(1), ...bShape];
  const out = pa.map((d, i) => Math.max(d, pb[i]));
  const n = out.reduce((x, y) => x * y, 1);
  const res = new Float64Array(n);
  const ia = new Int32Array(n);
  const ib = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let rem = i, oa = 0, ob = 0, sa = 1, sb = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const c = rem % out[d];
      rem = Math.floor(rem / out[d]);
      oa += (pa[d] === 1 ? 0 : c) * sa;
      ob += (pb[d] === 1 ? 0 : c) * sb;
      sa *= pa[d];
      sb *= pb[d];
    }
    ia[i] = oa;
    ib[i] = ob;
    res[i] = f(a[oa], b[ob]);
  }
  return { res, ia, ib, out };
}

describe('maximum, minimum, equal, expandTo', () => {
  // Ragged broadcast: [5, 1, 7] against [3, 1] → [5, 3, 7].
  const aShape = [5, 1, 7];
  const bShape = [3, 1];
  const make = (seed: number, ties: boolean) => {
    const gen = new Generator(seed);
    const a = f32round(randNonZero(gen, 35));
    const b = f32round(randNonZero(gen, 3));
    if (ties) { a[4] = b[1]; a[20] = b[0]; } // equal values: the gradient goes to a, equal() gives 1
    // Without ties, keep every pair ≥ 0.05 apart: gradcheck's ±1e-2 steps must not cross the kink.
    else for (let i = 0; i < a.length; i++) while (Array.from(b).some((v) => Math.abs(a[i] - v) < 0.05)) a[i] = Math.fround(a[i] + 0.07);
    return { a, b };
  };

  for (const [op, f] of [['maximum', Math.max], ['minimum', Math.min]] as const) {
    it(`${op}: forward, and backward vs float64 (the picked operand gets dy, a on ties) at ragged broadcast shapes`, async () => {
      const { a, b } = make(5, true);
      const ref = broadcastRef(a, aShape, b, bShape, f);
      const ta = requireGrad(Tensor.fromArray(a, aShape));
      const tb = requireGrad(Tensor.fromArray(b, bShape));
      poison(ref.out);
      const y = E[op](ta, tb);
      expect(y.shape).toEqual(ref.out);
      expect(relL2(await y.toArray(), ref.res)).toBeLessThan(1e-7);
      const dy = f32round(randNonZero(new Generator(6), ref.res.length));
      backward(y, Tensor.fromArray(dy, ref.out));
      const ga = new Float64Array(35);
      const gb = new Float64Array(3);
      for (let i = 0; i < dy.length; i++) {
        const pickA = f(a[ref.ia[i]], b[ref.ib[i]]) === a[ref.ia[i]];
        if (pickA) ga[ref.ia[i]] += dy[i]; else gb[ref.ib[i]] += dy[i];
      }
      expect(relL2(await ta.grad!.toArray(), ga), 'da').toBeLessThan(1e-6);
      expect(relL2(await tb.grad!.toArray(), gb), 'db').toBeLessThan(1e-6);
    });

    it(`${op}: gradcheck (no ties)`, async () => {
      const { a, b } = make(7, false);
      const r = await gradcheck((x, z) => E[op](x, z), [Tensor.fromArray(a, aShape), Tensor.fromArray(b, bShape)]);
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(true);
    });
  }

  it('equal: 1 where equal, else 0, with broadcasting; records no gradient', async () => {
    const { a, b } = make(8, true);
    const ref = broadcastRef(a, aShape, b, bShape, (p, q) => (p === q ? 1 : 0));
    expect(ref.res.reduce((s, v) => s + v, 0)).toBeGreaterThan(0); // the ties are in there
    poison(ref.out);
    const y = E.equal(requireGrad(Tensor.fromArray(a, aShape)), Tensor.fromArray(b, bShape));
    expect(Array.from(await y.toArray())).toEqual(Array.from(ref.res));
    expect(y.requiresGrad).toBe(false);
  });

  it('expandTo: forward vs float64 at ragged shapes, backward sums over the broadcast axes, gradcheck', async () => {
    const gen = new Generator(9);
    const x = f32round(randNonZero(gen, 7 * 3));
    const xs = [7, 1, 3];
    const target = [2, 7, 5, 3];
    const ref = broadcastRef(x, xs, new Float64Array(2 * 7 * 5 * 3), target, (p) => p);
    const t = requireGrad(Tensor.fromArray(x, xs));
    poison(target);
    const y = E.expandTo(t, target);
    expect(y.shape).toEqual(target);
    expect(Array.from(await y.toArray())).toEqual(Array.from(ref.res));
    const dy = f32round(randNonZero(gen, ref.res.length));
    backward(y, Tensor.fromArray(dy, target));
    const gx = new Float64Array(x.length);
    for (let i = 0; i < dy.length; i++) gx[ref.ia[i]] += dy[i];
    expect(relL2(await t.grad!.toArray(), gx)).toBeLessThan(1e-6);
    const r = await gradcheck((u) => E.expandTo(u, [2, 3, 4]), [Tensor.fromArray(f32round(randNonZero(gen, 3)), [3, 1])]);
    expect(r.ok).toBe(true);
    expect(() => E.expandTo(Tensor.empty([2, 3]), [4, 3])).toThrow(/expandTo/);
  });
});

