import { poison } from './ref/poison.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2, randn64, f32round } from './helpers.js';
import { softmaxRef } from './ref/linalg.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { softmax, logSoftmax } from '../src/tensor/ops/softmax.js';
import { mul } from '../src/tensor/ops/elementwise.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { gradcheck } from '../src/autograd/gradcheck.js';

beforeAll(setupGpu);

describe('softmax', () => {
  it('softmax and logSoftmax match float64 on ragged rows, with large offsets (max subtraction)', async () => {
    const gen = new Generator(1);
    const rows = 3 * 7, len = 77;
    const x = f32round(randn64(gen, rows * len, 3).map((v, i) => v + (i % 5 === 0 ? 80 : 0)));
    const t = Tensor.fromArray(x, [3, 7, len]);
    poison([3, 7, len]); // outputs start as NaN: every element must be written
    const y = await softmax(t).toArray();
    expect(y.every(Number.isFinite)).toBe(true);
    expect(relL2(y, softmaxRef(x, rows, len))).toBeLessThan(1e-6);
    poison([3, 7, len]);
    const ly = await logSoftmax(t).toArray();
    expect(relL2(ly, softmaxRef(x, rows, len, true))).toBeLessThan(1e-6);
    // each row sums to 1
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < len; j++) s += y[r * len + j];
      expect(Math.abs(s - 1)).toBeLessThan(1e-5);
    }
  });

  it('backward vs float64 (softmax and logSoftmax)', async () => {
    const gen = new Generator(2);
    const rows = 5, len = 13;
    const x = f32round(randn64(gen, rows * len));
    const w = f32round(randn64(gen, rows * len));
    for (const log of [false, true]) {
      const tx = requireGrad(Tensor.fromArray(x, [rows, len]));
      const y = log ? logSoftmax(tx) : softmax(tx);
      backward(sumAll(mul(y, Tensor.fromArray(w, [rows, len]))));
      const got = await tx.grad!.toArray();
      const s = softmaxRef(x, rows, len);
      const ref = new Float64Array(rows * len);
      for (let r = 0; r < rows; r++) {
        let dot = 0, sw = 0;
        for (let j = 0; j < len; j++) { dot += w[r * len + j] * s[r * len + j]; sw += w[r * len + j]; }
        for (let j = 0; j < len; j++) {
          const i = r * len + j;
          ref[i] = log ? w[i] - s[i] * sw : s[i] * (w[i] - dot);
        }
      }
      expect(relL2(got, ref), log ? 'logSoftmax' : 'softmax').toBeLessThan(1e-5);
    }
  });

  it('gradcheck', async () => {
    const gen = new Generator(3);
    const x = Tensor.fromArray(randn64(gen, 4 * 9), [4, 9]);
    const r = await gradcheck((t) => softmax(t), [x]);
    expect(r.ok, JSON.stringify(r.failures.slice(0, 3))).toBe(true);
    const r2 = await gradcheck((t) => logSoftmax(t), [x]);
    expect(r2.ok, JSON.stringify(r2.failures.slice(0, 3))).toBe(true);
  });

  it('rejects axes other than the last', () => {
    expect(() => softmax(Tensor.fromArray(new Float32Array(6), [2, 3]), 0)).toThrow(/last axis/);
  });
});
