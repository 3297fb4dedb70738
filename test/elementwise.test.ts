import { beforeAll, describe, expect, it } from 'vitest';
import { poison } from './ref/poison.js';
import { setupGpu, relL2, randNonZero, f32round } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import * as E from '../src/tensor/ops/elementwise.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
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
