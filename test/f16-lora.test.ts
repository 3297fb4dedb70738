// loraLinearF16: x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ as two fragment products (the low-rank term is the second's
// tail segment), against float64. Tolerances: test/ref/half.ts (F32_ACC_TOL against the reference on
// f16-rounded operands: there u = s·x·Aᵀ is itself rounded to f16 before the tail, so that reference
// rounds u too).
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { setupGpu, randNonZero, relL2 } from './helpers.js';
import { loraRef, loraBackwardRef } from './ref/lora.js';
import { f16round, F16_TOL, F32_ACC_TOL } from './ref/half.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { loraLinearF16 } from '../src/tensor/ops/lora_f16.js';
import { backward, requireGrad } from '../src/autograd/tape.js';

const g0 = await setupGpu();
const canRun = g0.acquired.hasF16 && g0.acquired.hasSubgroups;
beforeAll(setupGpu);
vi.setConfig({ testTimeout: 600_000 });

describe.skipIf(!canRun)('loraLinear f16 (fragments)', () => {
  it('forward and dx, dA, dB, db (W frozen f16, factors f32) vs float64', async () => {
    const M = 21; const K = 30; const N = 26; const R = 5; const s = 0.75;
    const gen = new Generator(12);
    const x = randNonZero(gen, M * K);
    const W = randNonZero(gen, N * K, 0.05, 0.5);
    const b = Float64Array.from(Float32Array.from(randNonZero(gen, N)));
    const A = Float64Array.from(Float32Array.from(randNonZero(gen, R * K, 0.05, 0.5)));
    const B = Float64Array.from(Float32Array.from(randNonZero(gen, N * R, 0.05, 0.5)));
    const dy = randNonZero(gen, M * N);
    const tx = requireGrad(Tensor.fromArray(x, [3, 7, K]));
    const tW = Tensor.fromArray(W, [N, K], 'f16');
    const tb = requireGrad(Tensor.fromArray(b, [N]));
    const tA = requireGrad(Tensor.fromArray(A, [R, K]));
    const tB = requireGrad(Tensor.fromArray(B, [N, R]));
    const y = loraLinearF16(tx, tW, tb, tA, tB, s, { out: 'f32' });
    expect(y.shape).toEqual([3, 7, N]);
    const yv = await y.toArray();
    backward(y, Tensor.fromArray(dy, y.shape));
    const [rx, rW, rA, rB, rdy] = [x, W, A, B, dy].map(f16round);
    // What the kernels multiply: f16 operands; u = s·x·Aᵀ is rounded to f16 when staged for the tail.
    const u = f16round(loraRef(rx, rW, null, rA, rB, s, M, N, K, R).u.map((v) => v * s));
    const yTight = loraRef(rx, rW, b, rA, rB, 0, M, N, K, R).y.map((v, i) => {
      let t = v;
      const m = Math.floor(i / N);
      const o = i % N;
      for (let r = 0; r < R; r++) t += u[m * R + r] * rB[o * R + r];
      return t;
    });
    const gref = loraBackwardRef(rx, rW, rA, rB, s, rdy, M, N, K, R);
    const e = {
      fwd: relL2(yv, loraRef(x, W, b, A, B, s, M, N, K, R).y), fwdRounded: relL2(yv, yTight),
      dx: relL2(await tx.grad!.toArray(), gref.dx), dA: relL2(await tA.grad!.toArray(), gref.dA),
      dB: relL2(await tB.grad!.toArray(), gref.dB), db: relL2(await tb.grad!.toArray(), loraBackwardRef(rx, rW, rA, rB, s, dy, M, N, K, R).db),
    };
    console.log(`loraLinear f16: relL2 ${JSON.stringify(e)}`);
    expect(e.fwd).toBeLessThan(F16_TOL);
    expect(e.fwdRounded).toBeLessThan(F32_ACC_TOL);
    expect(e.db).toBeLessThan(1e-6);
    // dx's tail multiplies g = s·dy·B rounded to f16, and dA = gᵀ·x too: an f16 rounding of g
    // (u/√3 ≈ 2.8e-4 relative) separates them from the reference, dB = dyᵀ·u likewise through u.
    for (const k of ['dx', 'dA', 'dB'] as const) expect(e[k], k).toBeLessThan(F16_TOL);
    for (const t of [tA.grad!, tB.grad!, tx.grad!]) expect(t.dtype).toBe('f32');
  });
});
