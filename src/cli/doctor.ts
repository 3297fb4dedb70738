// `lpo doctor`: is this machine ready? The adapter Dawn picked, a matmul checked against float64, and its speed.
import { initGpu } from '../gpu/runtime.js';
import { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { matmul } from '../tensor/ops/matmul.js';
import { matmulGeometry } from '../tensor/plan/matmul.js';
import { currentMatmulConfig } from '../tensor/plan/matmul-tune.js';
import { defineCommand, parseCommand } from './args.js';

export const doctorSpec = defineCommand({
  name: 'doctor',
  summary: 'checks this machine: the WebGPU adapter, a matmul verified against float64, and its speed',
  details: 'Exit 0 if the matmul matches, 1 if it does not or no adapter answers (the message says what to install).',
  options: {},
});

export async function doctor(argv: string[]): Promise<number> {
  if (!parseCommand(doctorSpec, argv)) return 0;
  const g = await initGpu({ verbose: false });
  const s = g.summary;
  console.log(`adapter: ${s.vendor} / ${s.architecture} / ${s.description}${s.isSoftware ? ' (software)' : ''}`);
  console.log(`features: ${s.features.filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f)).join(', ')}`);

  const M = 257, K = 129, N = 200;
  const gen = new Generator(0);
  const a = gen.normalArray(M * K);
  const b = gen.normalArray(K * N);
  const ta = Tensor.fromArray(a, [M, K]);
  const tb = Tensor.fromArray(b, [K, N]);
  const y = await matmul(ta, tb).toArray();
  let num = 0;
  let den = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let ref = 0;
      for (let k = 0; k < K; k++) ref += a[m * K + k] * b[k * N + n];
      num += (y[m * N + n] - ref) ** 2;
      den += ref * ref;
    }
  }
  const rel = Math.sqrt(num / den);
  const ok = Number.isFinite(rel) && rel < 1e-5;
  console.log(`matmul ${M}×${K}×${N} (${currentMatmulConfig(matmulGeometry(M, K, N))}): relL2 vs float64 ${rel.toExponential(2)} ${ok ? 'OK' : 'MISMATCH'}`);

  // Timing: warm, then the median of 9 synchronised runs.
  const times: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    matmul(ta, tb).dispose();
    await g.sync();
    if (i > 0) times.push(performance.now() - t0);
  }
  times.sort((p, q) => p - q);
  const ms = times[times.length >> 1];
  console.log(`matmul time: ${ms.toFixed(3)} ms median (${((2 * M * K * N) / (ms * 1e6)).toFixed(2)} GFLOP/s, includes submit + sync)`);
  ta.dispose();
  tb.dispose();
  return ok ? 0 : 1;
}
