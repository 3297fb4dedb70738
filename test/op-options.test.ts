// Ops with more than one numeric argument take an options object (docs/CONVENTIONS.md, Public API).
// These tests pin the check that makes that safe: a misspelt key or a NaN is an ArgumentError naming the
// op and the field (not a silently used default, not a NaN uniform), and a call in the old positional
// form is refused. Plus: the options are really used (a non-default eps / start changes the result).
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2 } from './helpers.js';
import { groupNormRef } from './ref/norm.js';
import { Tensor } from '../src/tensor/tensor.js';
import { groupNorm, layerNorm } from '../src/tensor/ops/norm.js';
import { stepDpoLoss, type StepDpoLossOptions } from '../src/tensor/ops/dpo.js';
import { affine } from '../src/tensor/ops/elementwise.js';
import { slice } from '../src/tensor/ops/layout.js';
import { timestepEmbedding } from '../src/nn/unet_config.js';
import { ArgumentError } from '../src/errors.js';

beforeAll(setupGpu);

/** Calls `f` and returns the ArgumentError it throws (fails the test if it throws nothing or something else). */
function argError(f: () => unknown): ArgumentError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ArgumentError);
    return e as ArgumentError;
  }
  throw new Error('expected an ArgumentError, nothing was thrown');
}

describe('op options objects', () => {
  it('groupNorm: a misspelt key, a NaN eps and the old positional form are ArgumentErrors naming op and field', () => {
    const x = Tensor.fromArray(new Float32Array(16).map((_, i) => i), [1, 4, 2, 2]);
    // `esp` would otherwise be ignored and eps silently stay 1e-5.
    expect(argError(() => groupNorm(x, 2, { esp: 1e-3 } as never)).message).toMatch(/groupNorm.*unknown option 'esp'/);
    expect(argError(() => groupNorm(x, 2, { eps: NaN })).message).toMatch(/groupNorm.*'eps'.*NaN/);
    expect(argError(() => layerNorm(x, { eps: Number('1e-5x') })).message).toMatch(/layerNorm.*'eps'/);
    // groupNorm(x, groups, weight, bias) from before the change: the weight arrives where the options go.
    expect(argError(() => (groupNorm as (...a: unknown[]) => Tensor)(x, 2, x, x)).message).toMatch(/groupNorm: options must be an object/);
    x.dispose();
  });

  it('stepDpoLoss: NaN beta, a missing eps and a misspelt key are ArgumentErrors', () => {
    const p = Tensor.fromArray(new Float32Array([-1, -1.05]), [2]);
    const call = (o: unknown) => () => stepDpoLoss(p, p, p, p, o as StepDpoLossOptions);
    expect(argError(call({ beta: NaN, eps: 0.1 })).message).toMatch(/stepDpoLoss.*'beta'.*NaN/);
    expect(argError(call({ beta: 500 })).message).toMatch(/stepDpoLoss.*'eps' is required/);
    expect(argError(call({ beta: 500, eps: 0.1, clipEps: 0.2 })).message).toMatch(/stepDpoLoss.*unknown option 'clipEps'/);
    p.dispose();
  });

  it('the other ops check the same way (affine, slice, timestepEmbedding)', () => {
    const x = Tensor.fromArray(new Float32Array([1, 2, 3]), [3]);
    expect(argError(() => affine(x, { scale: NaN })).message).toMatch(/affine.*'scale'/);
    expect(argError(() => (affine as (...a: unknown[]) => Tensor)(x, 2, 1)).message).toMatch(/affine: options must be an object/);
    expect(argError(() => slice(x, 0, { begin: 1 } as never)).message).toMatch(/slice.*unknown option 'begin'/);
    expect(argError(() => timestepEmbedding([1], 8, { maxPeriod: NaN })).message).toMatch(/timestepEmbedding.*'maxPeriod'/);
    expect(argError(() => timestepEmbedding([1], 8, { flipSinToCos: 1 as unknown as boolean })).message).toMatch(/'flipSinToCos' must be a boolean/);
    x.dispose();
  });

  it('the options are used: eps, scale/shift and start/end change the result as they should', async () => {
    // eps = 4 is far from the default 1e-5, so a dropped eps shows as a large error.
    const xs = Float64Array.from({ length: 12 }, (_, i) => (i % 5) - 2 + 0.25 * i);
    const x = Tensor.fromArray(Float32Array.from(xs), [1, 3, 2, 2]);
    const y = groupNorm(x, 3, { eps: 4 });
    expect(relL2(await y.toArray(), groupNormRef(xs, 1, 3, 4, 3, 4).y)).toBeLessThan(1e-6);
    const a = affine(x, { shift: 2 });
    expect(Array.from(await a.toArray())).toEqual(Array.from(xs, (v) => Math.fround(v) + 2).map(Math.fround));
    const s = slice(x, 1, { start: 1 });
    expect(s.shape).toEqual([1, 2, 2, 2]);
    expect(Array.from(await s.toArray())).toEqual(Array.from(xs.subarray(4), Math.fround));
    [x, y, a, s].forEach((t) => t.dispose());
    // maxPeriod enters the frequencies: a different period gives a different embedding.
    expect(relL2(timestepEmbedding([500], 8, { maxPeriod: 100 }), timestepEmbedding([500], 8))).toBeGreaterThan(0.1);
  });
});
