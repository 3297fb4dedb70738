// Peers in the same process (`npx vitest bench --run bench/peers.bench.ts`): our kernels against TensorFlow.js's
// WebGPU backend on the same adapter (navigator.gpu is our webgpu `create()` instance) and onnxruntime-node on
// the CPU (what a user without a GPU would reach for), on matmul, conv2d 3×3 and a small conv net forward
// (conv → SiLU → conv + skip → conv). Every timing ends with the result on the host (readback included for all),
// samples interleaved across implementations (bench/common.ts interleaved); gpu.js is in the matmul suite.
// Reports GFLOP/s and each peer's time ÷ ours (> 1: we are faster). LPO_BENCH_FULL=1 adds 2048³.
import { bench, describe } from 'vitest';
import { interleaved, machineInfo, printTable, writeSection } from './common.js';
import { onnxModel, type OnnxGraph } from './onnx-model.js';
import { initGpu, type Gpu } from '../src/gpu/runtime.js';
import { noGrad } from '../src/autograd/tape.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { matmul } from '../src/tensor/ops/matmul.js';
import { conv2d } from '../src/tensor/ops/conv2d.js';
import { silu } from '../src/tensor/ops/elementwise.js';
import { settings } from '../src/settings.js';

type Tf = typeof import('@tensorflow/tfjs-core');
type Ort = typeof import('onnxruntime-node');

async function loadTf(g: Gpu): Promise<Tf | string> {
  try {
    // TF.js finds WebGPU through navigator.gpu: hand it the same Dawn instance (so the same adapter).
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: g.acquired.gpu, userAgent: 'node' }, configurable: true, writable: true });
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) return 'tfjs webgpu backend refused to start';
    await tf.ready();
    return tf;
  } catch (e) {
    return `tfjs unavailable: ${(e as Error).message}`;
  }
}

async function loadOrt(): Promise<Ort | string> {
  try {
    return await import('onnxruntime-node');
  } catch (e) {
    return `onnxruntime-node unavailable: ${(e as Error).message}`;
  }
}

const rand = (n: number, gen: Generator, s = 1) => Float32Array.from({ length: n }, () => s * gen.normal());

interface Row { what: string; gflop: number; ms: Record<string, number>; ratio: Record<string, number> }

async function ortSession(ort: Ort, g: OnnxGraph): Promise<import('onnxruntime-node').InferenceSession> {
  return ort.InferenceSession.create(onnxModel(g), { intraOpNumThreads: 0, graphOptimizationLevel: 'all' });
}

export async function runPeersSuite(): Promise<Record<string, unknown>> {
  const g = await initGpu();
  const [tf, ort] = [await loadTf(g), await loadOrt()];
  const notes: string[] = [];
  if (typeof tf === 'string') notes.push(tf);
  if (typeof ort === 'string') notes.push(ort);
  const gen = new Generator(3);
  const rows: Row[] = [];
  const rounds = (gflop: number) => (g.isSoftware ? (gflop > 1 ? 3 : 7) : 15);

  const record = async (what: string, gflop: number, impls: { name: string; run: () => Promise<void> }[]) => {
    const r = await interleaved(impls, rounds(gflop));
    const ms = Object.fromEntries(r.results.map((x) => [x.name, x.medianMs]));
    const ratio = Object.fromEntries(r.results.map((x, i) => [x.name, r.ratioToFirst[i]]));
    rows.push({ what, gflop, ms, ratio });
    console.log(`${what}: ${r.results.map((x, i) => `${x.name} ${x.medianMs.toFixed(1)} ms (${r.ratioToFirst[i].toFixed(2)}×)`).join(', ')}`);
  };

  // ---- matmul
  const sizes = [256, 1024, ...(settings.benchFull ? [2048] : [])];
  for (const n of sizes) {
    const ah = rand(n * n, gen);
    const bh = rand(n * n, gen);
    const a = Tensor.fromArray(ah, [n, n]);
    const b = Tensor.fromArray(bh, [n, n]);
    const impls = [{ name: 'ours', run: async () => { const c = noGrad(() => matmul(a, b)); await c.toArray(); c.dispose(); } }];
    let tfa: import('@tensorflow/tfjs-core').Tensor2D | null = null;
    let tfb: import('@tensorflow/tfjs-core').Tensor2D | null = null;
    if (typeof tf !== 'string') {
      tfa = tf.tensor2d(ah, [n, n]);
      tfb = tf.tensor2d(bh, [n, n]);
      impls.push({ name: 'tfjs-webgpu', run: async () => { const c = tf.matMul(tfa!, tfb!); await c.data(); c.dispose(); } });
    }
    if (typeof ort !== 'string') {
      const s = await ortSession(ort, { inputs: [{ name: 'a', shape: [n, n] }, { name: 'b', shape: [n, n] }], outputs: [{ name: 'c', shape: [n, n] }], initializers: [], nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['c'] }] });
      const feeds = { a: new ort.Tensor('float32', ah, [n, n]), b: new ort.Tensor('float32', bh, [n, n]) };
      impls.push({ name: 'onnxruntime-cpu', run: async () => { await s.run(feeds); } });
    }
    await record(`matmul ${n}³`, (2 * n ** 3) / 1e9, impls);
    a.dispose(); b.dispose(); tfa?.dispose(); tfb?.dispose();
  }

  // ---- conv2d 3×3 pad 1: toy and the SD acceptance shape
  for (const [N, C, H, O] of [[64, 16, 8, 16], [8, 32, 32, 32], [2, 320, 32, 320]]) {
    const xh = rand(N * C * H * H, gen);
    const wh = rand(O * C * 9, gen, 0.05);
    const x = Tensor.fromArray(xh, [N, C, H, H]);
    const w = Tensor.fromArray(wh, [O, C, 3, 3]);
    const impls = [{ name: 'ours', run: async () => { const y = noGrad(() => conv2d(x, w, null, { padding: 1 })); await y.toArray(); y.dispose(); } }];
    const tfDispose: (() => void)[] = [];
    if (typeof tf !== 'string') {
      const tx = tf.transpose(tf.tensor4d(xh, [N, C, H, H]), [0, 2, 3, 1]) as import('@tensorflow/tfjs-core').Tensor4D; // NHWC
      const tw = tf.transpose(tf.tensor4d(wh, [O, C, 3, 3]), [2, 3, 1, 0]) as import('@tensorflow/tfjs-core').Tensor4D; // HWIO
      tfDispose.push(() => tx.dispose(), () => tw.dispose());
      impls.push({ name: 'tfjs-webgpu', run: async () => { const y = tf.conv2d(tx, tw, 1, 'same'); await y.data(); y.dispose(); } });
    }
    if (typeof ort !== 'string') {
      const s = await ortSession(ort, {
        inputs: [{ name: 'x', shape: [N, C, H, H] }], outputs: [{ name: 'y', shape: [N, O, H, H] }],
        initializers: [{ name: 'w', shape: [O, C, 3, 3], data: wh }],
        nodes: [{ op: 'Conv', inputs: ['x', 'w'], outputs: ['y'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } }],
      });
      const feeds = { x: new ort.Tensor('float32', xh, [N, C, H, H]) };
      impls.push({ name: 'onnxruntime-cpu', run: async () => { await s.run(feeds); } });
    }
    await record(`conv2d 3×3 ${H}×${H}×${C}→${O}, batch ${N}`, (2 * N * O * C * 9 * H * H) / 1e9, impls);
    x.dispose(); w.dispose(); tfDispose.forEach((f) => f());
  }

  // ---- a small conv net: y = conv3(h + conv2(silu(h))), h = conv1(x); 4 → 32 → 32 → 4 channels, 32×32, batch 8
  {
    const [N, H, C0, C] = [8, 32, 4, 32];
    const xh = rand(N * C0 * H * H, gen);
    const ws = [[C, C0], [C, C], [C0, C]].map(([o, i]) => ({ o, i, data: rand(o * i * 9, gen, 1 / Math.sqrt(i * 9)) }));
    const x = Tensor.fromArray(xh, [N, C0, H, H]);
    const wt = ws.map((w) => Tensor.fromArray(w.data, [w.o, w.i, 3, 3]));
    // The net the peers run: conv1 → SiLU → conv2 → + h → conv3.
    const oursNet = async () => {
      const y = noGrad(() => {
        const h = conv2d(x, wt[0], null, { padding: 1 });
        const a = silu(h);
        const z = conv2d(a, wt[1], null, { padding: 1, residual: h });
        const out = conv2d(z, wt[2], null, { padding: 1 });
        [h, a, z].forEach((t) => t.dispose());
        return out;
      });
      await y.toArray();
      y.dispose();
    };
    const impls = [{ name: 'ours', run: oursNet }];
    const tfDispose: (() => void)[] = [];
    if (typeof tf !== 'string') {
      const tx = tf.transpose(tf.tensor4d(xh, [N, C0, H, H]), [0, 2, 3, 1]) as import('@tensorflow/tfjs-core').Tensor4D;
      const tw = ws.map((w) => tf.transpose(tf.tensor4d(w.data, [w.o, w.i, 3, 3]), [2, 3, 1, 0]) as import('@tensorflow/tfjs-core').Tensor4D);
      tfDispose.push(() => tx.dispose(), ...tw.map((t) => () => t.dispose()));
      impls.push({
        name: 'tfjs-webgpu', run: async () => {
          const y = tf.tidy(() => {
            const h = tf.conv2d(tx, tw[0], 1, 'same');
            const z = tf.add(tf.conv2d(tf.mul(h, tf.sigmoid(h)) as import('@tensorflow/tfjs-core').Tensor4D, tw[1], 1, 'same'), h);
            return tf.conv2d(z as import('@tensorflow/tfjs-core').Tensor4D, tw[2], 1, 'same');
          });
          await y.data();
          y.dispose();
        },
      });
    }
    if (typeof ort !== 'string') {
      const s = await ortSession(ort, {
        inputs: [{ name: 'x', shape: [N, C0, H, H] }], outputs: [{ name: 'y', shape: [N, C0, H, H] }],
        initializers: ws.map((w, i) => ({ name: `w${i}`, shape: [w.o, w.i, 3, 3], data: w.data })),
        nodes: [
          { op: 'Conv', inputs: ['x', 'w0'], outputs: ['h'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
          { op: 'Sigmoid', inputs: ['h'], outputs: ['sh'] },
          { op: 'Mul', inputs: ['h', 'sh'], outputs: ['a'] },
          { op: 'Conv', inputs: ['a', 'w1'], outputs: ['c'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
          { op: 'Add', inputs: ['c', 'h'], outputs: ['z'] },
          { op: 'Conv', inputs: ['z', 'w2'], outputs: ['y'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
        ],
      });
      const feeds = { x: new ort.Tensor('float32', xh, [N, C0, H, H]) };
      impls.push({ name: 'onnxruntime-cpu', run: async () => { await s.run(feeds); } });
    }
    const gflop = (2 * N * H * H * 9 * (C * C0 + C * C + C0 * C)) / 1e9;
    await record(`conv net 4→32→32→4 (SiLU, skip) 32×32, batch ${N}`, gflop, impls);
    x.dispose(); wt.forEach((t) => t.dispose()); tfDispose.forEach((f) => f());
  }

  const impls = ['ours', 'tfjs-webgpu', 'onnxruntime-cpu'];
  printTable(
    ['workload', ...impls.map((i) => `${i} GFLOP/s`), ...impls.slice(1).map((i) => `${i} time ÷ ours`)],
    rows.map((r) => [r.what, ...impls.map((i) => (r.ms[i] ? (r.gflop / (r.ms[i] / 1000)).toFixed(2) : '—')), ...impls.slice(1).map((i) => (r.ratio[i] ? r.ratio[i].toFixed(2) : '—'))]),
  );
  const section = { date: new Date().toISOString(), machine: machineInfo(g.summary), method: 'result read back to the host in every sample; interleaved rounds; median', rows, notes };
  console.log(`wrote ${writeSection(g.summary, 'peers', section)}`);
  return section;
}

describe('peers', () => {
  bench('ours vs TF.js-WebGPU vs onnxruntime-node (table above)', async () => {
    await runPeersSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
