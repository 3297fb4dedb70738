import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2, randNonZero, f32round } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { fill } from '../src/tensor/ops/elementwise.js';
import { embedding } from '../src/tensor/ops/embedding.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, requireGrad } from '../src/autograd/tape.js';

beforeAll(setupGpu);

function poison(...shapes: number[][]): void {
  shapes.map((s) => fill(s, NaN)).forEach((t) => t.dispose());
}
const allFinite = (a: ArrayLike<number>) => Array.prototype.every.call(a, (x: number) => Number.isFinite(x));

function embRef(ids: ArrayLike<number>, table: ArrayLike<number>, V: number, D: number) {
  const out = new Float64Array(ids.length * D);
  for (let n = 0; n < ids.length; n++) for (let d = 0; d < D; d++) out[n * D + d] = ids[n] >= 0 && ids[n] < V ? table[ids[n] * D + d] : 0;
  return out;
}
function embBackRef(ids: ArrayLike<number>, dy: ArrayLike<number>, V: number, D: number) {
  const dt = new Float64Array(V * D);
  for (let n = 0; n < ids.length; n++) if (ids[n] >= 0 && ids[n] < V) for (let d = 0; d < D; d++) dt[ids[n] * D + d] += dy[n * D + d];
  return dt;
}

describe('embedding', () => {
  it('gathers rows and scatter-adds repeated ids on backward (exact up to f32 sum order; relL2 < 1e-6)', async () => {
    const gen = new Generator(8);
    const V = 53, D = 19;
    const shape = [3, 11];
    const N = 33;
    // Many repeats (ids drawn from 0..9 plus a few larger ones), and one out-of-range id.
    const ids = Int32Array.from({ length: N }, (_, i) => (i % 5 === 0 ? 40 + (i % 13) : Math.floor(gen.uniform() * 10)));
    ids[7] = V + 3;
    const table = f32round(randNonZero(gen, V * D));
    const dy = f32round(randNonZero(gen, N * D));
    const idsT = Tensor.fromArray(ids, shape, 'i32');
    const tab = requireGrad(Tensor.fromArray(table, [V, D]));
    poison([...shape, D]);
    const y = embedding(idsT, tab);
    expect(y.shape).toEqual([3, 11, D]);
    const yh = await y.toArray();
    expect(allFinite(yh)).toBe(true);
    expect(relL2(yh, embRef(ids, table, V, D))).toBe(0);
    backward(y, Tensor.fromArray(dy, y.shape));
    const g = await tab.grad!.toArray();
    const e = relL2(g, embBackRef(ids, dy, V, D));
    console.log(`embedding backward: relL2 ${e.toExponential(2)}`);
    expect(e).toBeLessThan(1e-6);
    // Untouched rows get exactly zero.
    for (let v = 10; v < 40; v++) for (let d = 0; d < D; d++) expect(g[v * D + d]).toBe(0);
  });

  it('is deterministic', async () => {
    const gen = new Generator(9);
    const ids = Int32Array.from({ length: 200 }, () => Math.floor(gen.uniform() * 4));
    const dy = f32round(randNonZero(gen, 200 * 8));
    const run = async () => {
      const t = requireGrad(Tensor.fromArray(new Float32Array(4 * 8).fill(1), [4, 8]));
      backward(embedding(Tensor.fromArray(ids, [200], 'i32'), t), Tensor.fromArray(dy, [200, 8]));
      return t.grad!.toArray();
    };
    expect(Array.from(await run())).toEqual(Array.from(await run()));
  });

  it('gradcheck w.r.t. the table (eps 1e-2, atol 2e-3, rtol 2e-2)', async () => {
    const gen = new Generator(10);
    const ids = Tensor.fromArray([2, 0, 2, 5, 1, 2], [2, 3], 'i32');
    const table = Tensor.fromArray(f32round(randNonZero(gen, 6 * 4)), [6, 4]);
    const r = await gradcheck((i, t) => embedding(i, t), [ids, table], { wrt: [1] });
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('rejects f32 ids', () => {
    expect(() => embedding(Tensor.empty([3]), Tensor.empty([4, 2]))).toThrow(/i32/);
  });
});
