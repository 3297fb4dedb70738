import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, relL2 } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor, tidy, tidyAsync } from '../src/tensor/tensor.js';
import { gpu } from '../src/gpu/runtime.js';
import * as E from '../src/tensor/ops/elementwise.js';
import { mean, sum } from '../src/tensor/ops/reduce.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, currentTape, isGradEnabled, noGrad, noGradAsync, record, requireGrad, Tape, withTape } from '../src/autograd/tape.js';
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

const inUse = async () => { await gpu().sync(); return gpu().pool.stats().inUseBytes; };
const tick = () => new Promise<void>((r) => setTimeout(r, 1));

describe('error paths', () => {
  it('a throwing backward rule leaves grad mode, the tape and GPU memory as before the forward', async () => {
    currentTape().clear();
    const x = requireGrad(Tensor.fromArray([0.5, -1, 2], [3]));
    const before = await inUse();
    const a = E.exp(x); // recorded, saves a tensor on the tape
    const out = noGrad(() => E.scale(a, 2));
    const b = record('throws', [a], out, [a], () => {
      throw new Error('backward rule failed');
    });
    const loss = sum(b, 0);
    expect(() => backward(loss)).toThrow('backward rule failed');
    expect(isGradEnabled()).toBe(true);
    expect(currentTape().nodes.length).toBe(0); // a partly consumed graph is dropped
    for (const t of [a, b, loss]) t.dispose();
    expect(await inUse()).toBe(before); // no pending gradient, no saved tensor left behind
    expect(x.grad).toBeNull();
    // The next forward/backward works as usual.
    backward(sum(E.scale(x, 3), 0));
    expect(Array.from(await x.grad!.toArray())).toEqual([3, 3, 3]);
    x.grad!.dispose();
    x.dispose();
  });

  it('a backward rule giving a gradient of the wrong shape frees it and says which op', async () => {
    currentTape().clear();
    const x = requireGrad(Tensor.fromArray([1, 2, 3], [3]));
    const before = await inUse();
    const out = noGrad(() => E.scale(x, 2));
    const y = record('badShape', [x], out, [], () => [() => Tensor.fromArray([1, 2], [2])]);
    const loss = sum(y, 0);
    expect(() => backward(loss)).toThrow(/backward of 'badShape': gradient \[2\] for input 0 of shape \[3\]/);
    y.dispose();
    loss.dispose();
    expect(await inUse()).toBe(before);
    x.dispose();
  });

  it('tidyAsync frees what a rejected computation made, across awaits', async () => {
    const x = Tensor.fromArray([1, 2, 3], [3]);
    const before = await inUse();
    await expect(tidyAsync(async () => {
      E.exp(x);
      await tick();
      E.square(x);
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(await inUse()).toBe(before);
    x.dispose();
  });

  it('tidyAsync keeps what it returns (handed to the enclosing scope) and frees the rest', async () => {
    const x = Tensor.fromArray([1, 2, 3], [3]);
    const before = await inUse();
    let kept: Tensor | null = null;
    const outer = await tidyAsync(async () => {
      kept = await tidyAsync(async () => {
        const e = E.exp(x);
        await tick();
        return { y: E.scale(e, 2) };
      }).then((r) => r.y);
      await tick();
      return tidy(() => E.add(kept!, kept!));
    });
    // `kept` belonged to the outer scope, which did not return it: freed; `outer` lives on.
    expect(kept!.disposed).toBe(true);
    expect(relL2(await outer.toArray(), [1, 2, 3].map((v) => 4 * Math.exp(v)))).toBeLessThan(1e-6); // GPU exp: f32 elementwise tolerance
    outer.dispose();
    expect(await inUse()).toBe(before);
    x.dispose();
  });

  it('noGradAsync records nothing across awaits and restores grad mode when it settles, also on rejection', async () => {
    const x = requireGrad(Tensor.fromArray([1, 2], [2]));
    const y = await noGradAsync(async () => {
      await tick();
      expect(isGradEnabled()).toBe(false);
      return E.exp(x);
    });
    expect(y.requiresGrad).toBe(false);
    expect(isGradEnabled()).toBe(true);
    await expect(noGradAsync(async () => {
      await tick();
      throw new Error('inner');
    })).rejects.toThrow('inner');
    expect(isGradEnabled()).toBe(true);
    y.dispose();
    x.dispose();
  });

  it('withTape records onto its own tape (even under noGrad) and restores the tape and grad mode after a throw', async () => {
    currentTape().clear();
    const x = requireGrad(Tensor.fromArray([1, 2, 3], [3]));
    const tape = new Tape();
    const outer = currentTape();
    const loss = noGrad(() => withTape(tape, () => sum(E.mul(x, x), 0)));
    expect(loss.requiresGrad).toBe(true);
    expect(tape.nodes.length).toBe(2);
    expect(outer.nodes.length).toBe(0);
    withTape(tape, () => backward(loss));
    expect(tape.nodes.length).toBe(0);
    expect(Array.from(await x.grad!.toArray())).toEqual([2, 4, 6]);
    expect(() => noGrad(() => withTape(tape, () => {
      throw new Error('inside');
    }))).toThrow('inside');
    expect(currentTape()).toBe(outer);
    expect(isGradEnabled()).toBe(true);
    loss.dispose();
    x.grad!.dispose();
    x.dispose();
  });
});
