import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import * as E from '../src/tensor/ops/elementwise.js';
import { mean, sum } from '../src/tensor/ops/reduce.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, noGrad, requireGrad } from '../src/autograd/tape.js';
import { clipGradNorm } from '../src/optim/adamw.js';

beforeAll(setupGpu);

describe('autograd', () => {
  it('gradcheck passes for a composite of elementwise ops and reductions (eps 1e-2, atol 2e-3, rtol 2e-2)', async () => {
    const gen = new Generator(5);
    const a = Tensor.fromArray(f32round(randNonZero(gen, 15, 0.2, 1.5)), [3, 5]);
    const b = Tensor.fromArray(f32round(randNonZero(gen, 5, 0.2, 1.5)), [5]);
    const f = (x: Tensor, y: Tensor) => mean(E.silu(E.mul(E.exp(E.scale(x, 0.5)), E.div(x, y))), 1);
    const r = await gradcheck(f, [a, b]);
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.checks).toBeGreaterThan(15);
  });

  it('gradcheck catches a wrong gradient', async () => {
    const gen = new Generator(6);
    const a = Tensor.fromArray(f32round(randNonZero(gen, 6)), [6]);
    // sigmoid's value recorded with silu's gradient rule: the check must fail.
    const wrong = (x: Tensor) => {
      const y = noGrad(() => E.sigmoid(x));
      const z = E.silu(x);
      const out = E.add(E.sub(z, E.unary('silu', x)), y); // value sigmoid(x), gradient 0
      z.dispose();
      return out;
    };
    const r = await gradcheck(wrong, [a]);
    expect(r.ok).toBe(false);
  });

  it('accumulates gradients across backward calls and uses of one tensor', async () => {
    const x = requireGrad(Tensor.fromArray([1, 2, 3], [3]));
    backward(sum(E.mul(x, x), 0)); // 2x
    backward(sum(E.scale(x, 3), 0)); // + 3
    expect(Array.from(await x.grad!.toArray())).toEqual([5, 7, 9]);
  });

  it('a second backward through a freed graph is an error, not a silent no-op', async () => {
    const p = requireGrad(Tensor.fromArray([1, 2], [2]));
    const l1 = sum(E.square(p), 0);
    const l2 = sum(E.square(p), 0);
    backward(l1);
    expect(() => backward(l2)).toThrow(/graph was already freed/);
    expect(Array.from(await p.grad!.toArray())).toEqual([2, 4]);
  });

  it('clipping scales a gradient buffer shared by two leaves once', async () => {
    const p1 = requireGrad(Tensor.fromArray([1, 2], [2]));
    const p2 = requireGrad(Tensor.fromArray([3, 4], [2]));
    backward(sum(E.add(p1, p2), 0)); // both leaves get dy (ones): global norm 2
    const norm = await clipGradNorm([p1, p2], 1);
    expect(await norm.item()).toBeCloseTo(2, 5);
    // torch's rule: scale by max_norm / (norm + 1e-6)
    for (const g of [await p1.grad!.toArray(), await p2.grad!.toArray()]) for (const v of g) expect(v).toBeCloseTo(1 / (2 + 1e-6), 6);
  });

  it('noGrad records nothing', async () => {
    const x = requireGrad(Tensor.fromArray([1, 2], [2]));
    const y = noGrad(() => E.exp(x));
    expect(y.requiresGrad).toBe(false);
    expect(() => backward(sum(y, 0))).toThrow(/does not require grad/);
  });
});
