// The sampling-step ops: cfgCombine (forward vs float64, gradient, gradcheck) and the guided DDIM update in one
// launch (guidedDdimStep) against the scheduler's own step on the combined noise, η = 0 and η > 0 with the same
// noise stream, guided and unguided, and float64.
import { afterAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, relL2 } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { noGrad, backward, requireGrad } from '../src/autograd/tape.js';
import { cfgCombine, ddimStepFused } from '../src/tensor/ops/guidance.js';
import { guidedDdimStep } from '../src/diffusion/guided_step.js';
import { DDIMScheduler } from '../src/diffusion/ddim.js';
import { TOY_SCHEDULER_CONFIG } from '../src/toy/model.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { overrideSettings } from '../src/settings.js';
import { LpoError, ShapeError } from '../src/errors.js';

await setupGpu();
let restore: (() => void) | null = null;
afterAll(() => restore?.());

describe('cfgCombine', () => {
  it('u + g·(c − u) and its gradient vs float64; gradcheck', async () => {
    const gen = new Generator(91);
    const [B, per, g] = [3, 2 * 5 * 3, 4.5];
    const eh = f32round(randNonZero(gen, 2 * B * per));
    const dyh = f32round(randNonZero(gen, B * per));
    const eps = requireGrad(Tensor.fromArray(eh, [2 * B, 2, 5, 3]));
    const y = cfgCombine(eps, g);
    expect(y.shape).toEqual([B, 2, 5, 3]);
    const ref = Float64Array.from({ length: B * per }, (_, i) => eh[i] + g * (eh[B * per + i] - eh[i]));
    expect(relL2(await y.toArray(), ref)).toBeLessThan(1e-6);
    backward(y, Tensor.fromArray(dyh, y.shape));
    const dref = Float64Array.from({ length: 2 * B * per }, (_, i) => (i < B * per ? (1 - g) * dyh[i] : g * dyh[i - B * per]));
    expect(relL2(await eps.grad!.toArray(), dref)).toBeLessThan(1e-6);
    const small = Tensor.fromArray(f32round(randNonZero(gen, 4 * 3)), [4, 3]);
    const r = await gradcheck((e) => cfgCombine(e, 2.5), [small]);
    expect(r.failures).toEqual([]);
    expect(() => cfgCombine(Tensor.empty([3, 2]), 2)).toThrow(ShapeError);
  });
});

describe('guided DDIM step in one launch', () => {
  const sched = DDIMScheduler.fromConfig(TOY_SCHEDULER_CONFIG);
  sched.setTimesteps(20);
  for (const eta of [0, 1]) {
    for (const guided of [true, false]) {
      it(`η = ${eta}, ${guided ? 'guided (g = 5)' : 'unguided'}: same x̂0 and x_prev as the unfused step; float64`, async () => {
        const gen = new Generator(92);
        const B = 3;
        const shape = [B, 4, 3, 5];
        const per = 4 * 3 * 5;
        const eh = f32round(randNonZero(gen, (guided ? 2 : 1) * B * per));
        const xh = f32round(randNonZero(gen, B * per));
        const eps = Tensor.fromArray(eh, [(guided ? 2 : 1) * B, 4, 3, 5]);
        const x = Tensor.fromArray(xh, shape);
        const t = 501;
        const o = { guidanceScale: guided ? 5 : undefined, eta };
        const run = async (fuse: boolean) => {
          restore?.();
          restore = overrideSettings({ fuse });
          const r = noGrad(() => guidedDdimStep(sched, eps, t, x, { ...o, generator: new Generator(7) }));
          const out = [await r.prevSample.toArray(), await r.predOriginalSample.toArray()];
          r.prevSample.dispose();
          r.predOriginalSample.dispose();
          return out;
        };
        const [pf, xf] = await run(true);
        const [pu, xu] = await run(false);
        expect(relL2(pf, pu)).toBeLessThan(1e-6);
        expect(relL2(xf, xu)).toBeLessThan(1e-6);
        const s = sched.stepScalars(t, eta);
        const e = Float64Array.from({ length: B * per }, (_, i) => (guided ? eh[i] + 5 * (eh[B * per + i] - eh[i]) : eh[i]));
        const x0 = e.map((v, i) => s.x0X * xh[i] + s.x0Out * v);
        expect(relL2(xf, x0)).toBeLessThan(1e-5);
        if (eta === 0) expect(relL2(pf, e.map((v, i) => s.meanX * xh[i] + s.meanOut * v))).toBeLessThan(1e-5);
        [eps, x].forEach((q) => q.dispose());
      });
    }
  }

  it('rejects bad shapes and gradients', () => {
    const x = Tensor.empty([2, 3]);
    const c = { x0X: 1, x0Out: 0, meanX: 1, meanOut: 0, std: 0 };
    expect(() => ddimStepFused(Tensor.empty([2, 3]), x, [c, c], { guidanceScale: 2 })).toThrow(ShapeError);
    expect(() => ddimStepFused(Tensor.empty([2, 3]), x, [c])).toThrow(/coefficient/);
    const e = requireGrad(Tensor.empty([2, 3]));
    expect(() => ddimStepFused(e, x, [c, c])).toThrow(LpoError);
  });
});
