// The README's autograd example, run as written (the pipeline part needs a model folder: see test/generate-cli.test.ts).
import { beforeAll, expect, it } from 'vitest';
import { initGpu, Tensor, requireGrad, backward, gradcheck, matmul, silu, meanAll, AdamW } from '../src/index.js';

beforeAll(async () => { await initGpu(); });

it('the README example runs and its gradients check out', async () => {
  const x = requireGrad(Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]));
  const w = requireGrad(Tensor.fromArray([0.1, 0.2, 0.3], [3, 1]));
  const loss = meanAll(silu(matmul(x, w)));
  backward(loss);
  expect(x.grad).not.toBeNull();
  const before = await w.toArray();
  const opt = new AdamW([w], { lr: 1e-3 });
  opt.step();
  const after = await w.toArray();
  expect(Array.from(after)).not.toEqual(Array.from(before));
  const r = await gradcheck((a, b) => silu(matmul(a, b)), [x, w]);
  expect(r.ok).toBe(true);
});
