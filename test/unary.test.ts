// Every unary op of the op-code table: forward and backward vs float64 at a ragged size (poisoned
// outputs), and gradcheck. Inputs are drawn from each op's domain (log/sqrt/rsqrt/pow on positives,
// reciprocal away from 0).
import { beforeAll, describe, expect, it } from 'vitest';
import { poison, allFinite } from './ref/poison.js';
import { setupGpu, relL2, randNonZero, f32round } from './helpers.js';
import { erf64 } from './ref/special.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import * as E from '../src/tensor/ops/elementwise.js';
import { OPCODES } from '../src/gpu/opcodes.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { gradcheck } from '../src/autograd/gradcheck.js';

beforeAll(setupGpu);

const sig = (x: number) => 1 / (1 + Math.exp(-x));
const phi = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const C = Math.sqrt(2 / Math.PI);

interface Case {
  /** float64 f and f'. */
  f: (x: number) => number;
  df: (x: number) => number;
  /** Inputs: |x| in [lo, hi], positive only when `pos`. */
  lo: number; hi: number; pos?: boolean;
  alpha?: number; beta?: number;
  /** relL2 tolerances (forward, backward); default 1e-6 each. */
  tol?: [number, number];
}

const A = -1.7, B = 0.3, POW = 2.5;
const CASES: Record<E.UnaryOp, Case> = {
  identity: { f: (x) => x, df: () => 1, lo: 0.05, hi: 3 },
  neg: { f: (x) => -x, df: () => -1, lo: 0.05, hi: 3 },
  exp: { f: Math.exp, df: Math.exp, lo: 0.05, hi: 3 },
  log: { f: Math.log, df: (x) => 1 / x, lo: 0.05, hi: 20, pos: true },
  sqrt: { f: Math.sqrt, df: (x) => 0.5 / Math.sqrt(x), lo: 0.05, hi: 20, pos: true },
  rsqrt: { f: (x) => 1 / Math.sqrt(x), df: (x) => -0.5 * x ** -1.5, lo: 0.05, hi: 20, pos: true, tol: [2e-6, 2e-6] },
  silu: { f: (x) => x * sig(x), df: (x) => sig(x) * (1 + x * (1 - sig(x))), lo: 0.05, hi: 4 },
  geluTanh: {
    f: (x) => 0.5 * x * (1 + Math.tanh(C * (x + 0.044715 * x ** 3))),
    df: (x) => {
      const t = Math.tanh(C * (x + 0.044715 * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C * (1 + 3 * 0.044715 * x * x);
    },
    lo: 0.05, hi: 4,
  },
  gelu: { f: (x) => 0.5 * x * (1 + erf64(x / Math.SQRT2)), df: (x) => 0.5 * (1 + erf64(x / Math.SQRT2)) + x * phi(x), lo: 0.05, hi: 4 },
  quickGelu: { f: (x) => x * sig(1.702 * x), df: (x) => sig(1.702 * x) * (1 + 1.702 * x * (1 - sig(1.702 * x))), lo: 0.05, hi: 4 },
  sigmoid: { f: sig, df: (x) => sig(x) * (1 - sig(x)), lo: 0.05, hi: 6 },
  tanh: { f: Math.tanh, df: (x) => 1 - Math.tanh(x) ** 2, lo: 0.05, hi: 4 },
  relu: { f: (x) => Math.max(x, 0), df: (x) => (x > 0 ? 1 : 0), lo: 0.05, hi: 3 },
  abs: { f: Math.abs, df: Math.sign, lo: 0.05, hi: 3 },
  square: { f: (x) => x * x, df: (x) => 2 * x, lo: 0.05, hi: 3 },
  affine: { f: (x) => A * x + B, df: () => A, lo: 0.05, hi: 3, alpha: A, beta: B },
  pow: { f: (x) => x ** POW, df: (x) => POW * x ** (POW - 1), lo: 0.1, hi: 4, pos: true, alpha: POW, tol: [2e-6, 2e-6] },
  reciprocal: { f: (x) => 1 / x, df: (x) => -1 / (x * x), lo: 0.2, hi: 5 },
  sin: { f: Math.sin, df: Math.cos, lo: 0.05, hi: 6 },
  cos: { f: Math.cos, df: (x) => -Math.sin(x), lo: 0.05, hi: 6 },
};

const SHAPE = [17, 59]; // 1003 elements: not a multiple of the 256-wide workgroup
const inputs = (c: Case, seed: number, n: number) => {
  const x = f32round(randNonZero(new Generator(seed), n, c.lo, c.hi));
  return c.pos ? x.map(Math.abs) : x;
};
const run = (op: E.UnaryOp, c: Case, x: Tensor) => E.unary(op, x, c.alpha ?? 1, c.beta ?? 0);

describe('unary ops', () => {
  it('the cases cover the whole unary table', () => {
    expect(Object.keys(CASES).sort()).toEqual([...OPCODES.UNARY].sort());
  });

  for (const [op, c] of Object.entries(CASES) as [E.UnaryOp, Case][]) {
    const [tf, tb] = c.tol ?? [1e-6, 1e-6];
    it(`${op}: forward and backward vs float64 at [${SHAPE}] (relL2 < ${tf}, ${tb})`, async () => {
      const x = inputs(c, 11, 17 * 59);
      const dy = f32round(randNonZero(new Generator(12), x.length, 0.1, 1));
      const t = requireGrad(Tensor.fromArray(x, SHAPE));
      poison(SHAPE);
      const y = run(op, c, t);
      const yh = await y.toArray();
      expect(allFinite(yh)).toBe(true);
      expect(relL2(yh, Array.from(x, c.f)), 'forward').toBeLessThan(tf);
      poison(SHAPE);
      backward(y, Tensor.fromArray(dy, SHAPE));
      const g = await t.grad!.toArray();
      expect(allFinite(g)).toBe(true);
      expect(relL2(g, Array.from(x, (v, i) => dy[i] * c.df(v))), 'backward').toBeLessThan(tb);
      [t, y].forEach((u) => u.dispose());
    });

    it(`${op}: gradcheck`, async () => {
      const t = Tensor.fromArray(inputs(c, 13, 12), [3, 4]);
      const r = await gradcheck((x) => run(op, c, x), [t]);
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(true);
    });
  }

  it('the named shorthands run their op (log, sqrt, rsqrt, reciprocal, sin, cos, pow, affine, scale)', async () => {
    const x = Tensor.fromArray([0.5, 2, 3], [3]);
    const want: [Tensor, number[]][] = [
      [E.log(x), [Math.log(0.5), Math.log(2), Math.log(3)]], [E.sqrt(x), [0.5, 2, 3].map(Math.sqrt)],
      [E.rsqrt(x), [0.5, 2, 3].map((v) => 1 / Math.sqrt(v))], [E.reciprocal(x), [2, 0.5, 1 / 3]],
      [E.sin(x), [0.5, 2, 3].map(Math.sin)], [E.cos(x), [0.5, 2, 3].map(Math.cos)], [E.pow(x, 3), [0.125, 8, 27]],
      [E.affine(x, { scale: 2, shift: 1 }), [2, 5, 7]], [E.scale(x, -2), [-1, -4, -6]],
    ];
    for (const [t, ref] of want) expect(relL2(await t.toArray(), ref)).toBeLessThan(1e-6);
  });
});
