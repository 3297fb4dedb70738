import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2, randNonZero, f32round } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { fill } from '../src/tensor/ops/elementwise.js';
import { loraLinear } from '../src/tensor/ops/lora.js';
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

describe('loraLinear', () => {
  for (const bias of [true, false]) {
    it(`forward and backward match float64 (${bias ? 'with' : 'no'} bias; relL2 < 1e-5); W gets no gradient`, async () => {
      const lead = [2, 7], N = 11, K = 13, R = 3, s = 0.75;
      const d = make(bias ? 1 : 2, lead, N, K, R);
      const x = requireGrad(Tensor.fromArray(d.x, [...lead, K]));
      const W = requireGrad(Tensor.fromArray(d.W, [N, K])); // frozen by the op even so
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
      for (const [n, t, r] of [['dx', x, rb.dx], ['dA', A, rb.dA], ['dB', B, rb.dB], ['db', b, rb.db]] as const) {
        if (!t) continue;
        const g = await t.grad!.toArray();
        expect(allFinite(g), n).toBe(true);
        errs[n] = relL2(g, r);
        expect(errs[n], n).toBeLessThan(1e-5);
      }
      expect(W.grad).toBeNull();
      console.log(`loraLinear (${bias ? 'bias' : 'no bias'}): relL2 ${Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
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

  it('gradcheck w.r.t. x, b, A, B (eps 1e-2, atol 2e-3, rtol 2e-2)', async () => {
    const N = 4, K = 5, R = 2;
    const d = make(4, [3], N, K, R);
    const ts = [
      Tensor.fromArray(d.x, [3, K]), Tensor.fromArray(d.W, [N, K]), Tensor.fromArray(d.b, [N]),
      Tensor.fromArray(d.A, [R, K]), Tensor.fromArray(d.B, [N, R]),
    ];
    const r = await gradcheck((x, W, b, A, B) => loraLinear(x, W, b, A, B, 0.5), ts, { wrt: [0, 2, 3, 4] });
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('rejects mismatched shapes', () => {
    const x = Tensor.empty([2, 5]);
    expect(() => loraLinear(x, Tensor.empty([3, 5]), null, Tensor.empty([2, 4]), Tensor.empty([3, 2]), 1)).toThrow(/loraLinear/);
    expect(() => loraLinear(x, Tensor.empty([3, 5]), null, Tensor.empty([2, 5]), Tensor.empty([3, 1]), 1)).toThrow(/loraLinear/);
  });
});
