// Long training loops on tiny models that watch resources (issue 13): after every iteration the buffer pool's
// live count and bytes, and now and then the Node heap after a full GC. test/hygiene.test.ts runs short loops;
// scripts/hygiene-long.ts runs the 1,000-iteration ones.
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { gpu } from '../src/gpu/runtime.js';
import { LpoTrainer } from '../src/lpo/trainer.js';
import { trainLrm } from '../src/lrm/train.js';
import { tinyModels } from './lpo-tiny.js';
import { brightDarkDataset, tinyLrm } from './lrm-tiny.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

export interface Sample { iteration: number; buffers: number; bytes: number; heap: number | null }

export interface LoopReport {
  name: string;
  iterations: number;
  seconds: number;
  /** The sample after the warm-up iterations (optimizer state, caches made) and the last one. */
  warm: Sample;
  last: Sample;
  /** Largest live count and bytes after the warm-up (a leak that is freed later still shows here). */
  maxBuffers: number;
  maxBytes: number;
  /** Heap after GC: the mean of the last quarter of the samples after the warm-up minus that of the first quarter. */
  heapGrowth: number;
  /** Least-squares slope of the heap after GC over the samples after the warm-up, bytes per iteration. */
  heapSlope: number;
  heapSamples: number;
  /** The first and the last heap sample after the warm-up. */
  heapFirst: number;
  heapLast: number;
}

function heapNow(): number {
  gc();
  return process.memoryUsage().heapUsed;
}

class Watch {
  readonly samples: Sample[] = [];
  constructor(private readonly heapEvery: number) {}
  take(iteration: number): void {
    const s = gpu().pool.stats();
    this.samples.push({ iteration, buffers: s.inUseBuffers, bytes: s.inUseBytes, heap: iteration % this.heapEvery === 0 ? heapNow() : null });
  }
  report(name: string, warmup: number, seconds: number): LoopReport {
    const after = this.samples.filter((s) => s.iteration >= warmup);
    const heap = after.filter((s) => s.heap !== null) as (Sample & { heap: number })[];
    const mx = heap.reduce((a, s) => a + s.iteration, 0) / heap.length;
    const my = heap.reduce((a, s) => a + s.heap, 0) / heap.length;
    const sxy = heap.reduce((a, s) => a + (s.iteration - mx) * (s.heap - my), 0);
    const sxx = heap.reduce((a, s) => a + (s.iteration - mx) ** 2, 0);
    const q = Math.max(1, Math.floor(heap.length / 4));
    const meanOf = (xs: typeof heap) => xs.reduce((a, s) => a + s.heap, 0) / xs.length;
    return {
      name, iterations: this.samples.length, seconds, warm: after[0], last: after[after.length - 1],
      maxBuffers: Math.max(...after.map((s) => s.buffers)), maxBytes: Math.max(...after.map((s) => s.bytes)),
      heapGrowth: meanOf(heap.slice(-q)) - meanOf(heap.slice(0, q)),
      heapSlope: sxx > 0 ? sxy / sxx : 0, heapSamples: heap.length, heapFirst: heap[0].heap, heapLast: heap[heap.length - 1].heap,
    };
  }
}

/** `n` LPO iterations (1 prompt, K = 2, 2 DDIM steps, 8×8 latents) on the tiny U-Net with a tiny LRM as reward. */
export async function lpoLoop(n: number, warmup = 5, heapEvery = 10): Promise<LoopReport> {
  const lrm = tinyLrm(7, { logitScaleInit: Math.log(2000) });
  const models = tinyModels(lrm, 4);
  const trainer = new LpoTrainer(models, ['a red cube'], { sampleBatchSize: 1, trainBatchSize: 4, epochs: n, K: 2, numInferenceSteps: 2, seed: 5, lr: 1e-4 });
  const w = new Watch(heapEvery);
  const t0 = performance.now();
  try {
    for (let i = 1; i <= n; i++) {
      await trainer.step();
      w.take(i);
    }
  } finally {
    trainer.dispose();
    models.dispose();
    lrm.dispose();
  }
  return w.report('LPO', warmup, (performance.now() - t0) / 1000);
}

/** `n` LRM optimizer steps (batches of 2 synthetic 8×8 latent pairs) on the tiny LRM. */
export async function lrmLoop(n: number, warmup = 5, heapEvery = 10): Promise<LoopReport> {
  const model = tinyLrm(3);
  const data = brightDarkDataset(16, 1);
  const w = new Watch(heapEvery);
  const t0 = performance.now();
  try {
    await trainLrm(model, data, null, { steps: n, batchSize: 2, warmupSteps: 2, lr: 1e-4, evalEvery: 0, seed: 1, onStep: (m) => w.take(m.step) });
  } finally {
    model.dispose();
  }
  return w.report('LRM', warmup, (performance.now() - t0) / 1000);
}

export function formatReport(r: LoopReport): string {
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
  return `${r.name}: ${r.iterations} iterations in ${r.seconds.toFixed(1)} s; live buffers ${r.warm.buffers} → ${r.last.buffers} (max ${r.maxBuffers}), `
    + `live bytes ${mb(r.warm.bytes)} → ${mb(r.last.bytes)} (max ${mb(r.maxBytes)}); heap after GC ${mb(r.heapFirst)} → ${mb(r.heapLast)}, `
    + `growth (last vs first quarter) ${(r.heapGrowth / 1024).toFixed(0)} KiB, slope ${r.heapSlope.toFixed(0)} B/iteration over ${r.heapSamples} samples`;
}
