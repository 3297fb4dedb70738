import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2, randNonZero, f32round } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { fill } from '../src/tensor/ops/elementwise.js';
import { loraLinear, resolveLoraVariant, type LoraVariant } from '../src/tensor/ops/lora.js';
import { overrideSettings, withSettings } from '../src/settings.js';
import { gpu } from '../src/gpu/runtime.js';
import { poison as poisonPool } from './ref/poison.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { loraRef, loraBackwardRef } from './ref/lora.js';

beforeAll(setupGpu);

function poison(...shapes: number[][]): void {
  shapes.map((s) => fill(s, NaN)).forEach((t) => t.dispose());
}
const allFinite = (a: ArrayLike<number>) => Array.prototype.every.call(a, (x: number) => Number.isFinite(x));

function make(seed: number, lead: number[], N: number, K: number, R: number) {
  const gen = new Generator(seed);
  const M = lead.reduce((a, b) => a * b, 1);
  return {
    M,
    x: f32round(randNonZero(gen, M * K)),
    W: f32round(randNonZero(gen, N * K)),
    b: f32round(randNonZero(gen, N)),
    A: f32round(randNonZero(gen, R * K)),
    B: f32round(randNonZero(gen, N * R)),
    dy: f32round(randNonZero(gen, M * N)),
  };
}

for (const variant of ['rows', 'tiled'] as const) describe(`loraLinear (${variant} forward)`, () => {
  let restore = () => {};
  beforeAll(() => { restore = overrideSettings({ loraVariant: variant }); });
  afterAll(() => restore());

  for (const bias of [true, false]) {
    it(`forward and backward match float64 (${bias ? 'with' : 'no'} bias; relL2 < 1e-5), dW included when W is trainable`, async () => {
      const lead = [2, 7], N = 11, K = 13, R = 3, s = 0.75;
      const d = make(bias ? 1 : 2, lead, N, K, R);
      const x = requireGrad(Tensor.fromArray(d.x, [...lead, K]));
      const W = requireGrad(Tensor.fromArray(d.W, [N, K])); // trainable: it must get dW = dyᵀ·x
      const b = bias ? requireGrad(Tensor.fromArray(d.b, [N])) : null;
      const A = requireGrad(Tensor.fromArray(d.A, [R, K]));
      const B = requireGrad(Tensor.fromArray(d.B, [N, R]));
      poison([d.M, R], [...lead, N]);
      const y = loraLinear(x, W, b, A, B, s);
      expect(y.shape).toEqual([...lead, N]);
      const yh = await y.toArray();
      expect(allFinite(yh)).toBe(true);
      const ref = loraRef(d.x, d.W, bias ? d.b : null, d.A, d.B, s, d.M, N, K, R);
      const ef = relL2(yh, ref.y);
      expect(ef).toBeLessThan(1e-5);
      poison([d.M, R], [...lead, K], [R, K], [N, R], [N]);
      backward(y, Tensor.fromArray(d.dy, y.shape));
      const rb = loraBackwardRef(d.x, d.W, d.A, d.B, s, d.dy, d.M, N, K, R);
      const errs: Record<string, number> = { y: ef };
      for (const [n, t, r] of [['dx', x, rb.dx], ['dW', W, rb.dW], ['dA', A, rb.dA], ['dB', B, rb.dB], ['db', b, rb.db]] as const) {
        if (!t) continue;
        expect(t.grad, `${n} exists`).not.toBeNull();
        const g = await t.grad!.toArray();
        expect(allFinite(g), n).toBe(true);
        errs[n] = relL2(g, r);
        expect(errs[n], n).toBeLessThan(1e-5);
      }
      console.log(`loraLinear ${variant} (${bias ? 'bias' : 'no bias'}): relL2 ${Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
    });
  }

  it('rank 1 on a 1-D input, only the adapters trainable', async () => {
    const N = 5, K = 9, R = 1, s = 2;
    const d = make(3, [], N, K, R);
    const x = Tensor.fromArray(d.x, [K]);
    const W = Tensor.fromArray(d.W, [N, K]);
    const A = requireGrad(Tensor.fromArray(d.A, [R, K]));
    const B = requireGrad(Tensor.fromArray(d.B, [N, R]));
    const y = loraLinear(x, W, undefined, A, B, s);
    expect(y.shape).toEqual([N]);
    expect(relL2(await y.toArray(), loraRef(d.x, d.W, null, d.A, d.B, s, 1, N, K, R).y)).toBeLessThan(1e-5);
    backward(y, Tensor.fromArray(d.dy, [N]));
    const rb = loraBackwardRef(d.x, d.W, d.A, d.B, s, d.dy, 1, N, K, R);
    expect(relL2(await A.grad!.toArray(), rb.dA)).toBeLessThan(1e-5);
    expect(relL2(await B.grad!.toArray(), rb.dB)).toBeLessThan(1e-5);
    expect(x.grad).toBeNull();
  });

  it('gradcheck w.r.t. x, W, b, A, B (eps 1e-2, atol 2e-3, rtol 2e-2)', async () => {
    const N = 4, K = 5, R = 2;
    const d = make(4, [3], N, K, R);
    const ts = [
      Tensor.fromArray(d.x, [3, K]), Tensor.fromArray(d.W, [N, K]), Tensor.fromArray(d.b, [N]),
      Tensor.fromArray(d.A, [R, K]), Tensor.fromArray(d.B, [N, R]),
    ];
    const r = await gradcheck((x, W, b, A, B) => loraLinear(x, W, b, A, B, 0.5), ts, { wrt: [0, 1, 2, 3, 4] });
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('rejects mismatched shapes', () => {
    const x = Tensor.empty([2, 5]);
    expect(() => loraLinear(x, Tensor.empty([3, 5]), null, Tensor.empty([2, 4]), Tensor.empty([3, 2]), 1)).toThrow(/loraLinear/);
    expect(() => loraLinear(x, Tensor.empty([3, 5]), null, Tensor.empty([2, 5]), Tensor.empty([3, 1]), 1)).toThrow(/loraLinear/);
  });
});

/** Counts gpu().dispatch calls made while fn runs. */
function countDispatches<T>(fn: () => T): { result: T; count: number; names: string[] } {
  const g = gpu();
  const orig = g.dispatch;
  const names: string[] = [];
  g.dispatch = function (this: typeof g, d) {
    if (d.kernel.name !== 'check.finite') names.push(d.kernel.name); // the LPO_CHECK_FINITE debug check is not the op's
    return orig.call(this, d);
  };
  try {
    const result = fn();
    return { result, count: names.length, names };
  } finally {
    g.dispatch = orig;
  }
}

describe('loraLinear: one launch forward, ragged shapes', () => {
  // M not a multiple of the 64-row tile or of the rows workgroup, in/out not multiples of 4,
  // out > 128 (two column tiles); ranks 1, 3, 4, 16 and 67 (> 64: rows only, u in two chunks).
  const cases: [number[], number, number, number][] = [
    [[70], 131, 37, 1], [[2, 35], 131, 37, 3], [[67], 9, 13, 4], [[5, 14], 130, 38, 16], [[33], 21, 19, 67],
  ];
  for (const variant of ['rows', 'tiled'] as const) {
    for (const [lead, N, K, R] of cases) {
      it(`${variant}: x [${lead}, ${K}] → [${N}], r = ${R}: one dispatch, finite, fwd/bwd vs float64 (relL2 < 1e-5)`, () => withSettings({ loraVariant: variant }, async () => {
        const used: LoraVariant = resolveLoraVariant(R);
        expect(used).toBe(R > 64 ? 'rows' : variant);
        const s = 1.5 / R;
        const d = make(100 + R + N, lead, N, K, R);
        const x = requireGrad(Tensor.fromArray(d.x, [...lead, K]));
        const W = Tensor.fromArray(d.W, [N, K]);
        const b = requireGrad(Tensor.fromArray(d.b, [N]));
        const A = requireGrad(Tensor.fromArray(d.A, [R, K]));
        const B = requireGrad(Tensor.fromArray(d.B, [N, R]));
        poisonPool([...lead, N], [d.M, R], [1]);
        const { result: y, count, names } = countDispatches(() => loraLinear(x, W, b, A, B, s));
        expect(count, names.join()).toBe(1);
        expect(names[0]).toBe(`lora.fwd_${used}`);
        const yh = await y.toArray();
        expect(allFinite(yh)).toBe(true);
        const errs: Record<string, number> = { y: relL2(yh, loraRef(d.x, d.W, d.b, d.A, d.B, s, d.M, N, K, R).y) };
        expect(errs.y).toBeLessThan(1e-5);
        poisonPool([...lead, K], [R, K], [N, R], [N], [d.M, R]);
        backward(y, Tensor.fromArray(d.dy, y.shape));
        const rb = loraBackwardRef(d.x, d.W, d.A, d.B, s, d.dy, d.M, N, K, R);
        for (const [n, t, r] of [['dx', x, rb.dx], ['dA', A, rb.dA], ['dB', B, rb.dB], ['db', b, rb.db]] as const) {
          const g = await t.grad!.toArray();
          expect(allFinite(g), n).toBe(true);
          errs[n] = relL2(g, r);
          expect(errs[n], n).toBeLessThan(1e-5);
        }
        console.log(`loraLinear ${variant}→${used} [${lead}]·[${N},${K}] r=${R}: relL2 ${Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
      }));
    }
  }

  it('inference (no grad anywhere) is one dispatch too; dB recomputes u when B became trainable after the forward', async () => {
    const lead = [9], N = 10, K = 7, R = 3, s = 0.5;
    const d = make(77, lead, N, K, R);
    const x = requireGrad(Tensor.fromArray(d.x, [...lead, K]));
    const W = Tensor.fromArray(d.W, [N, K]);
    const A = Tensor.fromArray(d.A, [R, K]);
    const B = Tensor.fromArray(d.B, [N, R]);
    const { result: y, count } = countDispatches(() => loraLinear(x, W, null, A, B, s));
    expect(count).toBe(1);
    requireGrad(B);
    backward(y, Tensor.fromArray(d.dy, y.shape));
    const rb = loraBackwardRef(d.x, d.W, d.A, d.B, s, d.dy, d.M, N, K, R);
    expect(relL2(await B.grad!.toArray(), rb.dB)).toBeLessThan(1e-5);
    expect(relL2(await x.grad!.toArray(), rb.dx)).toBeLessThan(1e-5);
  });
});
