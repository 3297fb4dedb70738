// Attention bench: SD1.5's first-block shapes, self 4096×4096 and cross 4096×77 (d = 40, 8 heads, B = 1),
// forward and backward (dq, dk, dv), on the current adapter. Prints a table and merges an `attention`
// section into bench/results/<adapter>.json. Used by bench/attention.bench.ts (vitest) and
// bench/run-attention.ts (standalone bundle for machines without npm).
//
// FLOPs: forward 4·B·H·Lq·Lk·d (PERF-ANCHORS §4.1); backward counted as 2.5× that (FlashAttention-2's
// convention: five Lq×Lk×d products against two; ours recomputes QKᵀ once more for dk/dv, which is not
// counted). "% peak" is against FP32 CUDA-core peak (H100/H200 66.9 TFLOP/s) or the 2-core CPU's
// measured FMA peak (173 GFLOP/s) on lavapipe. Memory: pool peak in-use bytes above what was in use
// before the call (inputs excluded), and the pool's peak allocated bytes.
// On lavapipe the 4096×4096 self-attention is shrunk to 1024×1024 (forward alone takes ~15 s there).
//
// Measured 2026-11-26, NVIDIA H200 (Dawn/Vulkan, driver 580.159.04), f32, medians of 15 samples:
//   self 4096², fwd 1.57 ms = 13.7 TFLOP/s (20.5% of FP32 peak); bwd 4.84 ms = 11.1 TFLOP/s (2.5× conv.)
//   cross 4096×77, fwd 0.086 ms = 4.7 TFLOP/s; bwd 0.34 ms = 3.0 TFLOP/s
//   torch 2.11 SDPA on the same card, fp32 (TF32 off): self fwd 1.16 ms, bwd 2.54 ms; cross fwd 0.066 ms,
//   bwd 1.28 ms. fp16: self fwd 0.11 ms, bwd 0.22 ms.
//   Peak extra in-use: fwd 5.1 MiB (the output), fwd+bwd 20.3 MiB, against 64 MiB for ONE head's scores.
// lavapipe (2 cores, loaded machine): self 1024² fwd 0.8–1.5 GFLOP/s, cross 4096×77 fwd 0.9–3 GFLOP/s.
import { fullShapesOnSoftware, interleaved, machinePeak, pct, printTable, timeIt, writeSection } from './common.js';
import { initGpu, gpu } from '../src/gpu/runtime.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { attention } from '../src/tensor/ops/attention.js';
import { withSettings } from '../src/settings.js';
import { backward, noGrad, requireGrad } from '../src/autograd/tape.js';

interface Row { what: string; pass: string; ms: number; gflops: number; peakFraction: number; peakExtraInUse: number; peakAllocated: number; reps: number }

export async function runSuite(opts: { samples?: number; write?: boolean } = {}): Promise<Row[]> {
  const g = await initGpu();
  const s = g.summary;
  const software = s.isSoftware;
  const adapter = `${s.vendor} / ${s.architecture} / ${s.description || s.device}`;
  const peak = machinePeak(s);
  const samples = opts.samples ?? (software ? 3 : 15);
  const shrink = software && !fullShapesOnSoftware;
  const H = 8, d = 40, C = H * d, B = 1;
  const shapes = [
    { name: 'self', Lq: shrink ? 1024 : 4096, Lk: shrink ? 1024 : 4096 },
    { name: 'cross', Lq: 4096, Lk: 77 },
  ];
  console.log(`\nattention bench on ${adapter}${shrink ? ' (software: self-attention shrunk to 1024×1024; LPO_BENCH_FULL=1 runs 4096)' : ''}; peak ${peak.gflops} GFLOP/s (${peak.source})`);
  const rows: Row[] = [];
  const pool = gpu().pool;
  for (const sh of shapes) {
    const gen = new Generator(1);
    const q = requireGrad(Tensor.fromArray(gen.normalArray(B * sh.Lq * C), [B, sh.Lq, C]));
    const k = requireGrad(Tensor.fromArray(gen.normalArray(B * sh.Lk * C), [B, sh.Lk, C]));
    const v = requireGrad(Tensor.fromArray(gen.normalArray(B * sh.Lk * C), [B, sh.Lk, C]));
    const dO = Tensor.fromArray(gen.normalArray(B * sh.Lq * C), [B, sh.Lq, C]);
    const what = `${sh.name} ${sh.Lq}×${sh.Lk} d${d} h${H}`;
    const fl = 4 * B * H * sh.Lq * sh.Lk * d;

    const fwdOnce = () => noGrad(() => attention(q, k, v, H)).dispose();
    const fwdBwdOnce = () => {
      const y = attention(q, k, v, H);
      backward(y, dO);
      y.dispose();
      for (const t of [q, k, v]) { t.grad?.dispose(); t.grad = null; }
    };
    // Memory: one call each, peaks measured from a synced, idle pool.
    const mem = async (fn: () => void) => {
      await gpu().sync();
      pool.resetPeaks();
      const base = pool.stats().inUseBytes;
      fn();
      await gpu().sync();
      const st = pool.stats();
      return { extra: st.peakInUseBytes - base, allocated: st.peakAllocatedBytes };
    };
    const mf = await mem(fwdOnce);
    const mb = await mem(fwdBwdOnce);
    const tf = await timeIt(fwdOnce, { software, samples, maxReps: 64 });
    const tb = await timeIt(fwdBwdOnce, { software, samples, maxReps: 64 });
    const bwdMs = Math.max(tb.ms - tf.ms, 1e-6);
    if (!software) {
      // Sweep the forward's query rows per invocation (register blocking); the default row is above.
      for (const qpt of [1, 2, 4]) {
        const t = await withSettings({ attentionQueriesPerThread: qpt }, () => timeIt(fwdOnce, { software, samples, maxReps: 64 }));
        rows.push({ what, pass: `forward, ${qpt} rows/invocation`, ms: t.ms, gflops: fl / (t.ms * 1e6), peakFraction: fl / (t.ms * 1e6) / peak.gflops, peakExtraInUse: mf.extra, peakAllocated: mf.allocated, reps: t.reps });
      }
    }
    rows.push({ what, pass: 'forward (default)', ms: tf.ms, gflops: fl / (tf.ms * 1e6), peakFraction: fl / (tf.ms * 1e6) / peak.gflops, peakExtraInUse: mf.extra, peakAllocated: mf.allocated, reps: tf.reps });
    rows.push({ what, pass: 'backward (fwd+bwd − fwd)', ms: bwdMs, gflops: (2.5 * fl) / (bwdMs * 1e6), peakFraction: (2.5 * fl) / (bwdMs * 1e6) / peak.gflops, peakExtraInUse: mb.extra, peakAllocated: mb.allocated, reps: tb.reps });
    [q, k, v, dO].forEach((t) => t.dispose());
  }
  const toy = software ? await toyShapesAb() : [];
  const mb = (x: number) => `${(x / 2 ** 20).toFixed(1)} MiB`;
  printTable(['what', 'pass', 'ms', 'GFLOP/s', '% peak', 'peak extra in-use', 'peak allocated', 'reps'],
    rows.map((r) => [r.what, r.pass, r.ms.toFixed(3), r.gflops.toFixed(r.gflops < 10 ? 2 : 0), pct(r.peakFraction), mb(r.peakExtraInUse), mb(r.peakAllocated), String(r.reps)]));
  console.log(`(one head's 4096×4096 f32 score matrix would be ${mb(4096 * 4096 * 4)}; all 8 heads ${mb(8 * 4096 * 4096 * 4)})`);
  if (opts.write ?? true) console.log(`wrote ${writeSection(s, 'attention', { date: new Date().toISOString(), adapter, software, peak, samples, rows, toyShapes: toy })}`);
  return rows;
}

interface ToyRow { what: string; subgroupMs: number; plainMs: number; speedup: number; gflops: number }

/**
 * The toy world's attention shapes on lavapipe, forward + backward, the subgroup entries (kernels/attention_sg.wgsl)
 * against the plain kernels (LPO_FUSE=0) in interleaved rounds: the toy U-Net's self- and cross-attention at its 4×4
 * level (training batch 32) and its text encoder's causal 77-token self-attention (17 prompts).
 */
async function toyShapesAb(): Promise<ToyRow[]> {
  const shapes = [
    { what: 'toy U-Net self 16×16 d32 h2 B32', B: 32, Lq: 16, Lk: 16, H: 2, d: 32, causal: false },
    { what: 'toy U-Net cross 16×77 d32 h2 B32', B: 32, Lq: 16, Lk: 77, H: 2, d: 32, causal: false },
    { what: 'toy text encoder causal 77×77 d32 h1 B17', B: 17, Lq: 77, Lk: 77, H: 1, d: 32, causal: true },
  ];
  const rows: ToyRow[] = [];
  for (const sh of shapes) {
    const gen = new Generator(2);
    const C = sh.H * sh.d;
    const q = requireGrad(Tensor.fromArray(gen.normalArray(sh.B * sh.Lq * C), [sh.B, sh.Lq, C]));
    const k = requireGrad(Tensor.fromArray(gen.normalArray(sh.B * sh.Lk * C), [sh.B, sh.Lk, C]));
    const v = requireGrad(Tensor.fromArray(gen.normalArray(sh.B * sh.Lk * C), [sh.B, sh.Lk, C]));
    const dO = Tensor.fromArray(gen.normalArray(sh.B * sh.Lq * C), [sh.B, sh.Lq, C]);
    const once = async () => {
      const y = attention(q, k, v, sh.H, { causal: sh.causal });
      backward(y, dO);
      y.dispose();
      for (const t of [q, k, v]) { t.grad?.dispose(); t.grad = null; }
      await gpu().sync();
    };
    const ab = await interleaved([
      { name: 'subgroup', run: once },
      { name: 'plain', run: () => withSettings({ fuse: false }, once) },
    ], 9);
    const [sgMs, plainMs] = ab.results.map((r) => r.medianMs);
    // Causal: half the score matrix (what is counted; the subgroup kernels compute the masked half too).
    const fl = 3.5 * 4 * sh.B * sh.H * sh.Lq * sh.Lk * sh.d * (sh.causal ? 0.5 : 1);
    rows.push({ what: sh.what, subgroupMs: sgMs, plainMs, speedup: ab.ratioToFirst[1], gflops: fl / (sgMs * 1e6) });
    [q, k, v, dO].forEach((t) => t.dispose());
  }
  printTable(['toy shape, forward + backward', 'subgroup ms', 'plain ms', 'plain / subgroup', 'GFLOP/s (subgroup)'],
    rows.map((r) => [r.what, r.subgroupMs.toFixed(2), r.plainMs.toFixed(2), r.speedup.toFixed(2), r.gflops.toFixed(2)]));
  return rows;
}
