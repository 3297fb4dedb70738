// `lpo demo`: the smoke demo: the adapter, a matmul checked against float64, and its speed.
import { initGpu } from '../gpu/runtime.js';
import { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { mul } from '../tensor/ops/elementwise.js';

export async function demo(): Promise<number> {
  const g = await initGpu({ verbose: false });
  const s = g.summary;
  console.log(`adapter: ${s.vendor} / ${s.architecture} / ${s.description}${s.isSoftware ? ' (software)' : ''}`);
  console.log(`features: ${s.features.filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f)).join(', ')}`);
  const gen = new Generator(0);
  const a = gen.normalArray(1000);
  const b = gen.normalArray(1000);
  const y = await mul(Tensor.fromArray(a, [1000]), Tensor.fromArray(b, [1000])).toArray();
  let err = 0;
  for (let i = 0; i < 1000; i++) err = Math.max(err, Math.abs(y[i] - a[i] * b[i]));
  console.log(`elementwise check: max |err| ${err.toExponential(2)} ${err === 0 ? 'OK' : 'MISMATCH'}`);
  return err === 0 ? 0 : 1;
}
