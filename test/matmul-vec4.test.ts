// The 'blocked' matmul's vec4 entries (lavapipe): A read as vec4 when its k runs are contiguous and 4-aligned
// (blocked_va), and B too when it is stored [N, K] (blocked_vab); the plan picks them by geometry. Each against
// float64 at ragged M and N (row and column tails), batched and folded, with bias and a residual, and the entry
// that actually ran checked by name. Large products whose operands are not contiguous in k run on packed copies
// (pack_rows, then blocked_vab).
import { describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, relL2 } from './helpers.js';
import { matmulRef } from './ref/linalg.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { matmul } from '../src/tensor/ops/matmul.js';
import { gpu } from '../src/gpu/runtime.js';

const g = await setupGpu();

describe.skipIf(!g.hasSubgroups8)('blocked matmul, vec4 operands', () => {
  const cases = [
    { B: 1, M: 13, K: 36, N: 70, transA: false, transB: false, bBatched: false, entry: 'matmul.blocked_va' },
    { B: 3, M: 9, K: 20, N: 19, transA: false, transB: true, bBatched: false, entry: 'matmul.blocked_vab' },
    { B: 2, M: 11, K: 12, N: 67, transA: false, transB: true, bBatched: true, entry: 'matmul.blocked_vab' },
    { B: 2, M: 11, K: 12, N: 17, transA: false, transB: false, bBatched: true, entry: 'matmul.blocked_va' },
    { B: 1, M: 13, K: 36, N: 70, transA: true, transB: true, bBatched: false, entry: 'matmul.blocked' },
    // 16 rows per tile (ROWS) once M ≥ 32, with a row tail.
    { B: 1, M: 45, K: 20, N: 141, transA: false, transB: true, bBatched: false, entry: 'matmul.blocked_vab' },
    // ≥ 2^21 multiply-adds and ≥ 128 per copied element: operands not contiguous in k are packed first.
    { B: 1, M: 261, K: 68, N: 133, transA: false, transB: false, bBatched: false, entry: 'matmul.pack_rows,matmul.blocked_vab' },
    { B: 1, M: 133, K: 68, N: 261, transA: true, transB: true, bBatched: false, entry: 'matmul.pack_rows,matmul.blocked_vab' },
    { B: 2, M: 300, K: 20, N: 300, transA: true, transB: false, bBatched: true, entry: 'matmul.pack_rows,matmul.pack_rows,matmul.blocked_vab' },
    // K = 1024: the packed rows get 4 floats of padding (row stride 1028).
    { B: 1, M: 129, K: 1024, N: 17, transA: false, transB: false, bBatched: false, entry: 'matmul.pack_rows,matmul.blocked_vab' },
    // Both packed, B one matrix broadcast over the batch.
    { B: 2, M: 300, K: 20, N: 300, transA: true, transB: false, bBatched: false, entry: 'matmul.pack_rows,matmul.pack_rows,matmul.blocked_vab' },
    // The same size with K not a multiple of 4 stays unpacked.
    { B: 1, M: 261, K: 67, N: 133, transA: false, transB: false, bBatched: false, entry: 'matmul.blocked' },
  ];
  for (const c of cases) {
    it(`${c.B}×${c.M}×${c.K}×${c.N} tA ${c.transA} tB ${c.transB}${c.bBatched ? ' (b batched)' : ''} runs ${c.entry}: vs float64 with bias and residual`, async () => {
      const gen = new Generator(101);
      const ah = f32round(randNonZero(gen, c.B * c.M * c.K));
      const bh = f32round(randNonZero(gen, (c.bBatched ? c.B : 1) * c.K * c.N));
      const biash = f32round(randNonZero(gen, c.N));
      const rh = f32round(randNonZero(gen, c.B * c.M * c.N));
      const a = Tensor.fromArray(ah, c.transA ? [c.B, c.K, c.M] : [c.B, c.M, c.K]);
      const bShape = c.transB ? [c.N, c.K] : [c.K, c.N];
      const b = Tensor.fromArray(bh, c.bBatched ? [c.B, ...bShape] : bShape);
      const bias = Tensor.fromArray(biash, [c.N]);
      const r = Tensor.fromArray(rh, [c.B, c.M, c.N]);
      const names: string[] = [];
      const orig = gpu().dispatch.bind(gpu());
      gpu().dispatch = (d) => { names.push(d.kernel.name); orig(d); };
      let y: Tensor;
      try {
        y = matmul(a, b, { transA: c.transA, transB: c.transB, bias, residual: r, variant: 'blocked' });
      } finally {
        gpu().dispatch = orig;
      }
      expect(names).toEqual(c.entry.split(','));
      const ref = matmulRef(ah, bh, { batch: c.B, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, aBatched: true, bBatched: c.bBatched, bias: biash })
        .map((v, i) => v + rh[i]);
      expect(relL2(await y.toArray(), ref)).toBeLessThan(1e-5);
      [a, b, bias, r, y].forEach((t) => t.dispose());
    });
  }
});
