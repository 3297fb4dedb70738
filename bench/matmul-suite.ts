// The matmul bench suite (run by bench/matmul.bench.ts under `npm run bench`, and by bench/run-matmul.ts
// bundled for a GPU machine without npm): matmul GFLOP/s for every variant and the peer gpu.js on the
// same Dawn adapter in the same process; prints a table and writes bench/results/<adapter>.json.
//
// Method: tinybench, ≥ 15 samples after warm-up, median. A sample is R back-to-back products then
// `await gpu().sync()` (gpu.js: R calls then the device's onSubmittedWorkDone), with R chosen after the
// warm-up so one sample lasts ≥ ~25 ms on fast GPUs (R = 1 on lavapipe): the submit/readback round trip
// (~0.1–0.2 ms) is then not what is measured. Inputs stay on the GPU for both libraries.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Bench } from 'tinybench';
import { initGpu, gpu } from '../src/gpu/runtime.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { matmul } from '../src/tensor/ops/matmul.js';
import { withSettings } from '../src/settings.js';
import { packPlan, resolveMatmulVariant, matmulGeometry, forcedConfigId, MATMUL_VARIANTS, type MatmulVariant } from '../src/tensor/plan/matmul.js';
import { autotuneMatmul, matmulAutotuner, matmulAutotuneEnabled, matmulBucket, currentMatmulConfig } from '../src/tensor/plan/matmul-tune.js';

const require = createRequire(import.meta.url);

interface Shape { M: number; K: number; N: number; label: string }
const SHAPES: Shape[] = [
  { M: 256, K: 256, N: 256, label: '256³' },
  { M: 512, K: 512, N: 512, label: '512³' },
  { M: 1024, K: 1024, N: 1024, label: '1024³' },
  { M: 4096, K: 320, N: 320, label: 'SD 4096×320×320' },
  { M: 4096, K: 320, N: 1280, label: 'SD 4096×320×1280' },
  { M: 77, K: 768, N: 768, label: 'CLIP 77×768×768' },
];

interface Row { shape: string; M: number; K: number; N: number; impl: string; gflops: number; kernelGflops?: number; medianMs: number; reps: number; samples: number; peakFraction: number; note?: string }

/** FP32 peak of the machine behind the adapter (GFLOP/s) and where the number comes from. */
function fp32Peak(desc: string, software: boolean): { gflops: number; source: string } {
  if (software) return { gflops: 173, source: 'CPU FMA peak measured on the 2-core Zen 3 CI box (PERF-ANCHORS §1.2), not re-measured here' };
  if (/H200/i.test(desc)) return { gflops: 66_900, source: 'H200 SXM FP32 (CUDA cores) 66.9 TFLOP/s (PERF-ANCHORS §1.1)' };
  if (/H100.*PCIe/i.test(desc)) return { gflops: 51_000, source: 'H100 PCIe FP32 51 TFLOP/s (PERF-ANCHORS §1.1)' };
  if (/H100/i.test(desc)) return { gflops: 66_900, source: 'H100 SXM FP32 66.9 TFLOP/s (PERF-ANCHORS §1.1)' };
  return { gflops: NaN, source: 'unknown adapter: no peak on file' };
}

async function timeIt(name: string, runOnce: () => void, sync: () => Promise<void>, flops: number, samples: number, software: boolean) {
  // Warm-up (pipeline compile, pool), then size R.
  runOnce();
  await sync();
  const t0 = performance.now();
  runOnce();
  await sync();
  const one = performance.now() - t0;
  const reps = software ? 1 : Math.max(1, Math.min(256, Math.ceil(25 / Math.max(one, 1e-3))));
  const b = new Bench({ iterations: samples, warmupIterations: software ? 1 : 3, time: 0, warmupTime: 0, throws: true });
  b.add(name, async () => {
    for (let r = 0; r < reps; r++) runOnce();
    await sync();
  });
  await b.run();
  const res = b.tasks[0].result as unknown as { latency: { p50: number; samplesCount?: number }; totalTime?: number };
  const ms = res.latency.p50 / reps;
  return { gflops: flops / (ms * 1e6), medianMs: ms, reps };
}

/** GPU-timestamp time of our kernel alone (per dispatch, median of `n`), where timestamps exist. */
async function kernelTime(runOnce: () => void, flops: number, n: number): Promise<number | undefined> {
  if (!gpu().acquired.hasTimestamps) return undefined;
  const per: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = await gpu().profile(() => { runOnce(); });
    const mm = t.filter((k) => k.kernel.startsWith('matmul.'));
    if (mm.length) per.push(mm.reduce((s, k) => s + k.ns, 0) / 1e6);
  }
  if (!per.length) return undefined;
  per.sort((p, q) => p - q);
  return flops / (per[per.length >> 1] * 1e6);
}

interface GpuJsPeer {
  run: (M: number, K: number, N: number) => { runOnce: () => void; sync: () => Promise<void>; check: () => Promise<Float32Array>; dispose: () => void };
  adapter: string;
}

async function setupGpuJs(): Promise<GpuJsPeer> {
  const acquired = gpu().acquired;
  // gpu.js's webgpu backend calls navigator.gpu.requestAdapter(): hand it the same Dawn instance and
  // the same adapter preference this process uses.
  const nav = {
    gpu: {
      requestAdapter: (o?: GPURequestAdapterOptions) => acquired.gpu.requestAdapter({ powerPreference: 'high-performance', ...o }),
      getPreferredCanvasFormat: () => 'rgba8unorm',
      wgslLanguageFeatures: acquired.gpu.wgslLanguageFeatures,
    },
  };
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
  const { GPU } = require('gpu.js');
  const { WebGPUContext } = require('gpu.js/src/backend/web-gpu/context.js');
  const ctx = await WebGPUContext.acquire();
  const info = ctx.adapter.info as GPUAdapterInfo;
  const g = new GPU({ mode: 'webgpu' });
  return {
    adapter: `${info.vendor} / ${info.device} / ${info.description}`,
    run(M, K, N) {
      const gen = new Generator(7);
      const a = gen.normalArray(M * K);
      const bm = gen.normalArray(K * N);
      const up = (rows: number, cols: number) => g.createKernel(function (this: { thread: { x: number; y: number } }, x: number[][]) {
        return x[this.thread.y][this.thread.x];
      }).setOutput([cols, rows]).setPipeline(true);
      const upA = up(M, K);
      const upB = up(K, N);
      const mm = g.createKernel(function (this: { thread: { x: number; y: number }; constants: { K: number } }, x: number[][], y: number[][]) {
        let s = 0;
        for (let k = 0; k < this.constants.K; k++) s += x[this.thread.y][k] * y[k][this.thread.x];
        return s;
      }).setOutput([N, M]).setConstants({ K }).setLoopMaxIterations(K + 1).setPipeline(true);
      const { input } = require('gpu.js');
      let ha: unknown;
      let hb: unknown;
      let last: Promise<{ toArray: () => Promise<Float32Array[] | Float32Array> }> | null = null;
      const ready = (async () => {
        ha = await upA(input(a, [K, M]));
        hb = await upB(input(bm, [N, K]));
      })();
      return {
        runOnce: () => { last = ready.then(() => mm(ha, hb)); },
        sync: async () => { await last; await ctx.device.queue.onSubmittedWorkDone(); },
        check: async () => {
          const h = await last!;
          const rows = await h.toArray();
          const out = new Float32Array(M * N);
          if (rows instanceof Float32Array) out.set(rows);
          else rows.forEach((r, i) => out.set(r, i * N));
          // float64 reference on a sample of entries
          return out;
        },
        dispose: () => { upA.destroy?.(); upB.destroy?.(); mm.destroy?.(); },
        ...{ a, b: bm },
      } as ReturnType<GpuJsPeer['run']> & { a: Float32Array; b: Float32Array };
    },
  };
}

/** Max relative error of C = A·B on 64 sampled entries against float64. */
function spotCheck(c: Float32Array, a: ArrayLike<number>, b: ArrayLike<number>, M: number, K: number, N: number): number {
  const gen = new Generator(3);
  let worst = 0;
  for (let s = 0; s < 64; s++) {
    const m = Math.floor(gen.uniform() * M);
    const n = Math.floor(gen.uniform() * N);
    let ref = 0;
    let mag = 0;
    for (let k = 0; k < K; k++) { ref += a[m * K + k] * b[k * N + n]; mag += Math.abs(a[m * K + k] * b[k * N + n]); }
    worst = Math.max(worst, Math.abs(c[m * N + n] - ref) / mag);
  }
  return worst;
}

export async function runSuite(): Promise<void> {
  const g = await initGpu();
  const s = g.summary;
  const software = s.isSoftware;
  const adapter = `${s.vendor} / ${s.device} / ${s.description}`;
  const peak = fp32Peak(`${s.description} ${s.device}`, software);
  const samples = 15;
  const rows: Row[] = [];
  const notes: string[] = [];
  const def = resolveMatmulVariant();
  console.log(`\nmatmul bench on ${adapter}${software ? ' (software)' : ''}; default variant '${def}'; FP32 peak ${peak.gflops} GFLOP/s (${peak.source})`);

  let peer: GpuJsPeer | null = null;
  try {
    peer = await setupGpuJs();
    console.log(`gpu.js webgpu adapter: ${peer.adapter}`);
  } catch (e) {
    notes.push(`gpu.js webgpu mode unavailable: ${(e as Error).message}`);
  }

  const variants: readonly MatmulVariant[] = MATMUL_VARIANTS;
  // The SGEMM family has barriers: on lavapipe only gemm64 at the smallest shape (compiles and runs slowly there).
  const softwareGemm = (v: MatmulVariant, label: string) => !v.startsWith('gemm') || (v === 'gemm64' && label === '256³');
  if (software) notes.push('software adapter: gemm128 / gemm128x64 skipped and gemm64 timed at 256³ only (barrier kernels are slow on lavapipe)');
  const tuning = !software && matmulAutotuneEnabled();
  if (!software) notes.push(tuning ? 'lpo default (auto) = the autotuned configuration for the shape bucket (tuned before timing; its config id in the note column, every candidate\'s kernel GFLOP/s in the notes)' : 'autotune off (LPO_AUTOTUNE=0 or no timestamps): lpo default (auto) = static heuristic');
  for (const sh of SHAPES) {
    const { M, K, N } = sh;
    const flops = 2 * M * K * N;
    // lavapipe (~0.5–5 GFLOP/s): keep each row under ~15 s. Big shapes run only our default kernel.
    const bigForCpu = software && flops > 2 * 512 ** 3 + 1;
    const hugeForCpu = software && flops > 2 * 1024 ** 3 + 1;
    if (hugeForCpu) {
      notes.push(`${sh.label}: skipped on the software adapter (${(flops / 1e9).toFixed(1)} GFLOP per product, minutes at lavapipe speed)`);
      continue;
    }
    const gen = new Generator(1);
    const ta = Tensor.fromArray(gen.normalArray(M * K), [M, K]);
    const tb = Tensor.fromArray(gen.normalArray(K * N), [K, N]);
    const ha = await ta.toArray();
    const hb = await tb.toArray();
    const mine = bigForCpu ? [def] : variants.filter((v) => v === resolveMatmulVariant(v) && (!software || softwareGemm(v, sh.label)));
    for (const v of mine) {
      const y0 = matmul(ta, tb, { variant: v });
      const err = spotCheck(await y0.toArray(), ha, hb, M, K, N);
      y0.dispose();
      const t = await timeIt(`lpo.${v}`, () => matmul(ta, tb, { variant: v }).dispose(), () => gpu().sync(), flops, samples, software);
      const kernelGflops = software ? undefined : await kernelTime(() => matmul(ta, tb, { variant: v }).dispose(), flops, samples).catch(() => undefined);
      rows.push({ shape: sh.label, M, K, N, impl: `lpo ${v}${software && v === def ? ' (default)' : ''}`, ...t, kernelGflops, samples, peakFraction: t.gflops / peak.gflops, note: `${v.startsWith('gemm') ? forcedConfigId(v, matmulGeometry(M, K, N)) : ''}${err > 1e-4 ? ` MISMATCH ${err.toExponential(1)}` : ''}` || undefined });
      if (v === 'blocked' && packPlan(matmulGeometry(M, K, N))) {
        // The same kernel family straight from B [K, N] (scalar B loads), without the packed copy.
        const u = await withSettings({ pack: false }, () => timeIt('lpo.blocked.unpacked', () => matmul(ta, tb, { variant: v }).dispose(), () => gpu().sync(), flops, samples, software));
        rows.push({ shape: sh.label, M, K, N, impl: 'lpo blocked, unpacked (LPO_PACK=0)', ...u, samples, peakFraction: u.gflops / peak.gflops, note: `packed ${(t.gflops / u.gflops).toFixed(2)}× faster` });
      }
    }
    if (!software) {
      // The op's own choice for this shape (no variant forced): tune its bucket first (what the op would
      // do in the background on first use), then time what it picks.
      const geo = matmulGeometry(M, K, N);
      const t0 = performance.now();
      await autotuneMatmul(geo);
      const tuneMs = performance.now() - t0;
      const chosen = currentMatmulConfig(geo);
      const rec = tuning ? matmulAutotuner().record(matmulBucket(geo, false, false)) : undefined;
      if (rec) {
        const ranked = Object.entries(rec.times).sort((p, q) => p[1] - q[1]).map(([id, ns]) => `${id} ${Number.isFinite(ns) && ns > 0 ? (flops / ns).toFixed(0) : 'failed'}`);
        notes.push(`${sh.label}: autotune (${tuneMs.toFixed(0)} ms${matmulAutotuner().tunedHere.includes(matmulBucket(geo, false, false)) ? '' : ', from cache'}) GFLOP/s by candidate: ${ranked.join(', ')}`);
      }
      const y0 = matmul(ta, tb);
      const err = spotCheck(await y0.toArray(), ha, hb, M, K, N);
      y0.dispose();
      const t = await timeIt('lpo.auto', () => matmul(ta, tb).dispose(), () => gpu().sync(), flops, samples, software);
      const kernelGflops = await kernelTime(() => matmul(ta, tb).dispose(), flops, samples).catch(() => undefined);
      rows.push({ shape: sh.label, M, K, N, impl: 'lpo default (auto)', ...t, kernelGflops, samples, peakFraction: t.gflops / peak.gflops, note: `${chosen}${err > 1e-4 ? ` MISMATCH ${err.toExponential(1)}` : ''}` });
      // Same, but submitted after every product (as gpu.js does), so host encoding overlaps GPU work.
      const ts = await timeIt('lpo.auto.submit', () => { matmul(ta, tb).dispose(); gpu().flush(); }, () => gpu().sync(), flops, samples, software);
      rows.push({ shape: sh.label, M, K, N, impl: 'lpo default (auto, submit each)', ...ts, samples, peakFraction: ts.gflops / peak.gflops, note: chosen });
    }
    // 1024³ is one of the two acceptance shapes: the peer runs there too, with fewer samples on lavapipe.
    const peerHere = !bigForCpu || sh.label === '1024³';
    const peerSamples = bigForCpu ? 3 : samples;
    if (bigForCpu) notes.push(`${sh.label}: software adapter, only the default variant ('${def}') timed${peerHere ? `; gpu.js with ${peerSamples} samples` : '; gpu.js'} and the other variants skipped (too slow on lavapipe)`);
    if (peer && peerHere) {
      try {
        const p = peer.run(M, K, N) as ReturnType<GpuJsPeer['run']> & { a: Float32Array; b: Float32Array };
        p.runOnce();
        await p.sync();
        const err = spotCheck(await p.check(), p.a, p.b, M, K, N);
        const t = await timeIt('gpu.js', p.runOnce, p.sync, flops, peerSamples, software);
        rows.push({ shape: sh.label, M, K, N, impl: 'gpu.js (webgpu)', ...t, samples: peerSamples, peakFraction: t.gflops / peak.gflops, note: err > 1e-4 ? `MISMATCH ${err.toExponential(1)}` : undefined });
        p.dispose();
      } catch (e) {
        notes.push(`${sh.label}: gpu.js failed: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    ta.dispose();
    tb.dispose();
  }

  // Table.
  const head = ['shape', 'impl', 'GFLOP/s', 'ms', 'reps', '% FP32 peak', 'vs gpu.js', 'kernel-only GFLOP/s (timestamps)', 'note'];
  const table: string[][] = rows.map((r) => {
    const peerRow = rows.find((q) => q.shape === r.shape && q.impl.startsWith('gpu.js'));
    const ratio = peerRow && !r.impl.startsWith('gpu.js') ? `${(r.gflops / peerRow.gflops).toFixed(1)}×` : '';
    return [r.shape, r.impl, r.gflops.toFixed(r.gflops < 10 ? 2 : 0), r.medianMs.toFixed(3), String(r.reps), `${(100 * r.peakFraction).toFixed(r.peakFraction < 0.01 ? 2 : 1)}%`, ratio, r.kernelGflops ? r.kernelGflops.toFixed(0) : '', r.note ?? ''];
  });
  const w = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i])).join(' | ');
  console.log(`\n${line(head)}\n${w.map((n) => '-'.repeat(n)).join('-|-')}\n${table.map(line).join('\n')}`);

  // Acceptance (issue 11): default ≥ 10× gpu.js at 512³ and 1024³ (and ≥ 12 GFLOP/s at 1024³ on lavapipe); every optimised variant beats naive.
  const verdicts: string[] = [];
  for (const label of ['512³', '1024³']) {
    const ours = rows.find((r) => r.shape === label && r.impl === 'lpo default (auto)') ?? rows.find((r) => r.shape === label && r.impl.includes('(default)'));
    const theirs = rows.find((r) => r.shape === label && r.impl.startsWith('gpu.js'));
    if (ours && theirs) verdicts.push(`${label}: ${ours.impl} / gpu.js = ${(ours.gflops / theirs.gflops).toFixed(1)}× (${ours.gflops / theirs.gflops >= 10 ? 'PASS' : 'FAIL'} ≥ 10×)`);
    else verdicts.push(`${label}: no comparison in this run`);
    const each = rows.find((r) => r.shape === label && r.impl === 'lpo default (auto, submit each)');
    if (each && theirs) verdicts.push(`${label}: ${each.impl} / gpu.js = ${(each.gflops / theirs.gflops).toFixed(1)}×`);
  }
  for (const sh of SHAPES) {
    const naive = rows.find((r) => r.shape === sh.label && r.impl.startsWith('lpo naive'));
    if (!naive) continue;
    for (const r of rows.filter((q) => q.shape === sh.label && q.impl.startsWith('lpo') && !q.impl.startsWith('lpo naive') && !q.impl.startsWith('lpo default (auto'))) {
      if (r.gflops <= naive.gflops) verdicts.push(`${sh.label}: ${r.impl} does not beat naive (${r.gflops.toFixed(2)} vs ${naive.gflops.toFixed(2)})`);
    }
  }
  console.log(`\n${verdicts.join('\n')}${notes.length ? `\nnotes:\n- ${notes.join('\n- ')}` : ''}`);

  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/${(s.isSoftware ? s.description : s.device || s.description || s.vendor || 'adapter').replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80)}.json`;
  let prior: Record<string, unknown> = {};
  try { prior = JSON.parse(readFileSync(file, 'utf8')); } catch { /* first run */ }
  writeFileSync(file, JSON.stringify({
    ...prior,
    matmul: { date: new Date().toISOString(), adapter, software, defaultVariant: def, peak, samples, rows, verdicts, notes, autotune: tuning ? Object.fromEntries(SHAPES.map((sh) => { const b = matmulBucket(matmulGeometry(sh.M, sh.K, sh.N), false, false); return [sh.label, matmulAutotuner().record(b) ?? null]; })) : undefined },
  }, null, 2));
  console.log(`wrote ${file}`);
}

