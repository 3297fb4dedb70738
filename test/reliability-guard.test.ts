// The non-finite step guard (src/optim/guard.ts): one flag for the loss and every gradient, read back with the
// step's scalars in one readback; a NaN step is skipped (parameters and AdamW state untouched, gradients
// dropped) and logged, N in a row stop training with NonFiniteTrainingError, and a loss scaler hears every verdict.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { setupGpu } from './helpers.js';
import { gpu } from '../src/gpu/runtime.js';
import { Tensor, tidy } from '../src/tensor/tensor.js';
import { square } from '../src/tensor/ops/elementwise.js';
import { meanAll } from '../src/tensor/ops/reduce.js';
import { backward } from '../src/autograd/tape.js';
import { Linear } from '../src/nn/linear.js';
import { AdamW } from '../src/optim/adamw.js';
import { NonFiniteTrainingError, StepGuard } from '../src/optim/guard.js';
import { NonFiniteError } from '../src/gpu/errors.js';
import { Generator } from '../src/tensor/random.js';
import { ArgumentError } from '../src/errors.js';

beforeAll(setupGpu);

/** A tiny regression step on `x` (5×3 → 2): the loss, with its gradients on the layer's parameters. */
function lossOf(layer: Linear, x: Float32Array): Tensor {
  const loss = tidy(() => meanAll(square(layer.forward(Tensor.fromArray(x, [5, 3])))));
  backward(loss);
  return loss;
}

async function snapshot(layer: Linear, opt: AdamW): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const p of layer.parameters()) {
    out.push(await p.toArray());
    const m = opt.moments(p);
    if (m) out.push(await m.m.toArray(), await m.v.toArray());
  }
  return out;
}

describe('StepGuard', () => {
  it('checks on the GPU and reads the flag with the step scalars in one readback', async () => {
    const g = new Generator(1);
    const ok = Tensor.fromArray(g.normalArray(1000), [1000]);
    const bad = Tensor.fromArray(g.normalArray(1000).map((v, i) => (i === 777 ? NaN : v)), [1000]);
    const inf = Tensor.fromArray([2, -Infinity, 3], [3]);
    const s = Tensor.fromArray([1.5], [1]);
    const read = vi.spyOn(gpu(), 'read');
    expect(await StepGuard.check([ok, null], [s])).toEqual({ finite: true, scalars: [1.5] });
    expect(read).toHaveBeenCalledTimes(1);
    expect(read.mock.calls[0][1]).toBe(8); // the flag and one scalar, not the 1000 gradient values
    expect((await StepGuard.check([ok, bad])).finite).toBe(false);
    expect((await StepGuard.check([inf])).finite).toBe(false);
    const nanLoss = Tensor.fromArray([NaN], [1]);
    const v = await StepGuard.check([ok], [nanLoss]);
    expect(v.finite).toBe(false);
    expect(Number.isNaN(v.scalars[0])).toBe(true);
    read.mockRestore();
    for (const t of [ok, bad, inf, s, nanLoss]) t.dispose();
  });

  it('skips a NaN step: parameters and AdamW moments untouched, gradients dropped, logged, the scaler told', async () => {
    const layer = new Linear(3, 2);
    const opt = new AdamW(layer.parameters(), { lr: 0.1 });
    const logs: string[] = [];
    const verdicts: boolean[] = [];
    const guard = new StepGuard({ log: (m) => logs.push(m), scaler: { update: (f) => verdicts.push(f) } });
    const x = new Generator(2).normalArray(15);
    const loss0 = lossOf(layer, x);
    const v0 = await guard.step(opt, [loss0], 'step 1');
    expect(v0.finite).toBe(true);
    expect(v0.scalars[0]).toBeCloseTo(await loss0.item(), 6);
    loss0.dispose();
    const before = await snapshot(layer, opt);
    expect(opt.stepCount(layer.weight)).toBe(1);

    const poisoned = x.map((v, i) => (i === 4 ? NaN : v)); // one NaN input → NaN loss and gradients
    const loss1 = lossOf(layer, poisoned);
    const v1 = await guard.step(opt, [loss1], 'step 2');
    loss1.dispose();
    expect(v1.finite).toBe(false);
    expect(await snapshot(layer, opt)).toEqual(before);
    expect(opt.stepCount(layer.weight)).toBe(1);
    expect(layer.parameters().every((p) => p.grad === null)).toBe(true);
    expect(logs).toEqual([expect.stringMatching(/^step 2: NaN\/Inf in the loss or the gradients \(NaN\); step skipped \(1 in a row, 1 in all\)$/)]);
    expect(verdicts).toEqual([true, false]);

    // A good step resets the count and trains on.
    const loss2 = lossOf(layer, x);
    expect((await guard.step(opt, [loss2], 'step 3')).finite).toBe(true);
    loss2.dispose();
    expect(guard.consecutive).toBe(0);
    expect(opt.stepCount(layer.weight)).toBe(2);
    opt.dispose();
    layer.dispose();
  });

  it('stops with NonFiniteTrainingError after N bad steps in a row, with a clear message', async () => {
    const layer = new Linear(3, 2);
    const opt = new AdamW(layer.parameters());
    const guard = new StepGuard({ maxConsecutive: 3, log: () => {} });
    const bad = new Float32Array(15).fill(Infinity);
    for (let i = 1; i <= 2; i++) {
      const l = lossOf(layer, bad);
      expect((await guard.step(opt, [l], `step ${i}`)).finite).toBe(false);
      l.dispose();
    }
    const l = lossOf(layer, bad);
    const err = await guard.step(opt, [l], 'step 3').catch((e) => e);
    l.dispose();
    expect(err).toBeInstanceOf(NonFiniteTrainingError);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect(err.message).toMatch(/training stopped: 3 steps in a row had NaN\/Inf .* limit is 3\)\. Try a lower learning rate/);
    expect(opt.stepCount(layer.weight)).toBe(0);
    expect(() => new StepGuard({ maxConsecutive: 0 })).toThrow(ArgumentError);
    opt.dispose();
    layer.dispose();
  });
});
