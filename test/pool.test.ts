import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, relL2 } from './helpers.js';
import { avgPoolRef, avgPoolBackwardRef, spatialMeanRef, spatialMeanBackwardRef, upsampleRef, upsampleBackwardRef } from './ref/pool.js';
import { poison, allFinite } from './ref/poison.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { avgPool2d, spatialMean, upsampleNearest2x } from '../src/tensor/ops/pool.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { ShapeError } from '../src/errors.js';

beforeAll(setupGpu);

const [N, C, H, W] = [2, 5, 7, 9];
const planes = N * C;

/** Runs op forward and backward against float64 references; returns the relL2 errors. */
async function check(op: (x: Tensor) => Tensor, refFwd: (x: Float64Array) => Float64Array, refBwd: (dy: Float64Array) => Float64Array, yShape: number[], seed: number) {
  const gen = new Generator(seed);
  const xh = f32round(randNonZero(gen, N * C * H * W));
  const x = requireGrad(Tensor.fromArray(xh, [N, C, H, W]));
  poison(yShape);
  const y = op(x);
  expect(y.shape).toEqual(yShape);
  const yv = await y.toArray();
  expect(allFinite(yv)).toBe(true);
  const dyh = f32round(randNonZero(gen, y.size));
  const dy = Tensor.fromArray(dyh, yShape);
  poison(x.shape);
  backward(y, dy);
  const dx = await x.grad!.toArray();
  expect(allFinite(dx)).toBe(true);
  const errs = { fwd: relL2(yv, refFwd(xh)), dx: relL2(dx, refBwd(dyh)) };
  [x, y, dy].forEach((t) => { t.grad?.dispose(); t.dispose(); });
  return errs;
}

describe('pool', () => {
  for (const [k, s] of [[2, 2], [3, 2], [[2, 3], [1, 2]]] as const) {
    it(`avgPool2d kernel ${JSON.stringify(k)} stride ${JSON.stringify(s)} on [${N},${C},${H},${W}] (relL2 < 1e-6)`, async () => {
      const [kh, kw] = typeof k === 'number' ? [k, k] : k;
      const [sh, sw] = typeof s === 'number' ? [s, s] : s;
      const { oh, ow } = avgPoolRef(new Float64Array(planes * H * W), planes, H, W, kh, kw, sh, sw);
      const errs = await check(
        (x) => avgPool2d(x, k as number | [number, number], s as number | [number, number]),
        (x) => avgPoolRef(x, planes, H, W, kh, kw, sh, sw).y,
        (dy) => avgPoolBackwardRef(dy, planes, H, W, kh, kw, sh, sw),
        [N, C, oh, ow], 41);
      console.log(`avgPool2d k=${JSON.stringify(k)} s=${JSON.stringify(s)}: relL2 ${JSON.stringify(errs)}`);
      expect(errs.fwd).toBeLessThan(1e-6);
      expect(errs.dx).toBeLessThan(1e-6);
    });
  }

  it(`spatialMean [${N},${C},${H},${W}] → [${N},${C}] (relL2 < 1e-6)`, async () => {
    const errs = await check(spatialMean, (x) => spatialMeanRef(x, planes, H * W), (dy) => spatialMeanBackwardRef(dy, planes, H * W), [N, C], 42);
    console.log(`spatialMean: relL2 ${JSON.stringify(errs)}`);
    expect(errs.fwd).toBeLessThan(1e-6);
    expect(errs.dx).toBeLessThan(1e-6);
  });

  it(`upsampleNearest2x [${N},${C},${H},${W}] → [${N},${C},${2 * H},${2 * W}] (exact forward, relL2 < 1e-6 backward)`, async () => {
    const errs = await check(upsampleNearest2x, (x) => upsampleRef(x, planes, H, W), (dy) => upsampleBackwardRef(dy, planes, H, W), [N, C, 2 * H, 2 * W], 43);
    console.log(`upsampleNearest2x: relL2 ${JSON.stringify(errs)}`);
    expect(errs.fwd).toBe(0);
    expect(errs.dx).toBeLessThan(1e-6);
  });

  it('gradcheck: avgPool2d, spatialMean, upsampleNearest2x', async () => {
    const gen = new Generator(44);
    const x = Tensor.fromArray(f32round(randNonZero(gen, 2 * 3 * 5 * 4)), [2, 3, 5, 4]);
    for (const f of [(t: Tensor) => avgPool2d(t, 3, [2, 1]), spatialMean, upsampleNearest2x]) {
      const r = await gradcheck(f, [x]);
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(true);
    }
    x.dispose();
  });

  it('rejects non-4-D inputs and oversize kernels', () => {
    const x = Tensor.empty([2, 3, 4]);
    expect(() => spatialMean(x)).toThrow(ShapeError);
    const y = Tensor.empty([1, 1, 2, 2]);
    expect(() => avgPool2d(y, 3)).toThrow(/larger/);
    [x, y].forEach((t) => t.dispose());
  });
});
