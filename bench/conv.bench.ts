// `npm run bench` (vitest bench --run): conv2d (forward, dx, dw; every variant) and groupNorm on the
// same adapter; prints a table and merges a `conv` section into bench/results/<adapter>.json.
//
// Method as bench/matmul.bench.ts: tinybench, ≥ 15 samples after warm-up, median; a sample is R
// back-to-back launches then `await gpu().sync()`, R sized so a sample lasts ≥ ~25 ms on GPUs (R = 1 on
// lavapipe). FLOPs are 2·N·O·C·kh·kw·OH·OW per conv pass; groupNorm bytes use torch's convention (read x
// once, write y once: 2·numel·4), the kernels actually read x twice more (stats, two-pass variance).
// On lavapipe the SD shapes would take minutes, so smaller spatial sizes stand in (marked in the table).
import { bench, describe } from 'vitest';
import { fullShapesOnSoftware, machinePeak, pct, printTable, timeIt, writeSection } from './common.js';
import { initGpu, gpu } from '../src/gpu/runtime.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { conv2d, resolveConv2dVariant, type Conv2dVariant } from '../src/tensor/ops/conv2d.js';
import { groupNorm } from '../src/tensor/ops/norm.js';
import { groupNormPlan } from '../src/tensor/plan/variants.js';
import { withSettings } from '../src/settings.js';
import { backward, requireGrad, noGrad } from '../src/autograd/tape.js';

interface ConvShape { label: string; n: number; c: number; o: number; hw: number; k: number; cpu?: { hw: number } }
const CONVS: ConvShape[] = [
  // The acceptance shape of issue 11 (≥ 10 GFLOP/s on lavapipe, forward and both gradients), run at full size.
  { label: 'conv3x3 32×32×320→320 batch 2', n: 2, c: 320, o: 320, hw: 32, k: 3 },
  // The toy world's U-Net convolutions at a sampling batch.
  { label: 'conv3x3 8×8×16→16 batch 64 (toy)', n: 64, c: 16, o: 16, hw: 8, k: 3 },
  { label: 'conv3x3 4×4×32→32 batch 64 (toy)', n: 64, c: 32, o: 32, hw: 4, k: 3 },
  { label: 'conv3x3 64×64×320→320', n: 1, c: 320, o: 320, hw: 64, k: 3, cpu: { hw: 16 } },
  { label: 'conv3x3 32×32×640→640', n: 1, c: 640, o: 640, hw: 32, k: 3, cpu: { hw: 8 } },
  { label: 'conv1x1 64×64×320→320', n: 1, c: 320, o: 320, hw: 64, k: 1, cpu: { hw: 32 } },
];

const groupNormPlanName = () => groupNormPlan(64);

interface Row { what: string; impl: string; rate: number; unit: string; ms: number; reps: number; peakFraction: number; note?: string }

async function runSuite(): Promise<void> {
  const g = await initGpu();
  const s = g.summary;
  const software = s.isSoftware;
  const adapter = `${s.vendor} / ${s.architecture} / ${s.description || s.device}`;
  const peak = machinePeak(s);
  const samples = software && fullShapesOnSoftware ? 3 : 15;
  const rows: Row[] = [];
  const notes: string[] = [];
  console.log(`\nconv bench on ${adapter}${software ? ' (software)' : ''}; peaks ${peak.gflops} GFLOP/s, ${peak.gbps} GB/s (${peak.source})`);
  const variants: Conv2dVariant[] = ['sg', 'rb', 'tiled'];
  const def = resolveConv2dVariant();

  for (const sh of CONVS) {
    const hw = software && sh.cpu && !fullShapesOnSoftware ? sh.cpu.hw : sh.hw;
    const label = hw === sh.hw ? sh.label : `${sh.label.replace(/\d+×\d+/, `${hw}×${hw}`)} (lavapipe stand-in)`;
    if (hw !== sh.hw) notes.push(`${sh.label}: run at ${hw}×${hw} on the software adapter (the SD size takes minutes at lavapipe speed; LPO_BENCH_FULL=1 runs it)`);
    const gen = new Generator(5);
    const pad = (sh.k - 1) / 2;
    const x = requireGrad(Tensor.fromArray(gen.normalArray(sh.n * sh.c * hw * hw), [sh.n, sh.c, hw, hw]));
    const w = requireGrad(Tensor.fromArray(gen.normalArray(sh.o * sh.c * sh.k * sh.k, 0, 0.05), [sh.o, sh.c, sh.k, sh.k]));
    const b = Tensor.fromArray(gen.normalArray(sh.o), [sh.o]);
    const dy = Tensor.fromArray(gen.normalArray(sh.n * sh.o * hw * hw), [sh.n, sh.o, hw, hw]);
    const flops = 2 * sh.n * sh.o * sh.c * sh.k * sh.k * hw * hw;
    // lavapipe: the siblings of the default are only timed at the smallest stand-in (8×8).
    const vs = (software ? variants.filter((v) => v === def || hw <= 8) : variants).filter((v) => resolveConv2dVariant(v) === v);
    for (const v of vs) {
      const fwd = await timeIt(() => noGrad(() => conv2d(x, w, b, { padding: pad, variant: v })).dispose(), { software, samples });
      rows.push({ what: `${label} fwd`, impl: `${v}${v === def ? ' (default)' : ''}`, rate: flops / (fwd.ms * 1e6), unit: 'GFLOP/s', ms: fwd.ms, reps: fwd.reps, peakFraction: flops / (fwd.ms * 1e6) / peak.gflops });
      // Backward (dx + dw, dbias via reduce) through the tape: 2× the forward FLOPs.
      const step = () => {
        const y = conv2d(x, w, b, { padding: pad, variant: v });
        backward(y, dy);
        y.dispose();
        x.grad?.dispose(); x.grad = null;
        w.grad?.dispose(); w.grad = null;
      };
      const bwd = await timeIt(step, { software, samples });
      const bwdOnly = Math.max(bwd.ms - fwd.ms, 1e-6);
      rows.push({ what: `${label} dx+dw`, impl: `${v}${v === def ? ' (default)' : ''}`, rate: (2 * flops) / (bwdOnly * 1e6), unit: 'GFLOP/s', ms: bwdOnly, reps: bwd.reps, peakFraction: (2 * flops) / (bwdOnly * 1e6) / peak.gflops, note: 'fwd+bwd time minus fwd' });
      if (v === 'sg') {
        // Large convolutions run through patch buffers and packed products (src/tensor/ops/conv2d.ts: im2col,
        // col2im, im2col_t); LPO_PACK=0 keeps the implicit-GEMM kernels fwd_sg, dx_sg and dw_sg.
        const direct = await withSettings({ pack: false }, async () => {
          const f = await timeIt(() => noGrad(() => conv2d(x, w, b, { padding: pad, variant: v })).dispose(), { software, samples });
          const fb = await timeIt(step, { software, samples });
          return { f, bOnly: Math.max(fb.ms - f.ms, 1e-6), reps: fb.reps };
        });
        const impl = 'sg, implicit GEMM (LPO_PACK=0)';
        rows.push({ what: `${label} fwd`, impl, rate: flops / (direct.f.ms * 1e6), unit: 'GFLOP/s', ms: direct.f.ms, reps: direct.f.reps, peakFraction: flops / (direct.f.ms * 1e6) / peak.gflops, note: `default ${(direct.f.ms / fwd.ms).toFixed(2)}× faster` });
        rows.push({ what: `${label} dx+dw`, impl, rate: (2 * flops) / (direct.bOnly * 1e6), unit: 'GFLOP/s', ms: direct.bOnly, reps: direct.reps, peakFraction: (2 * flops) / (direct.bOnly * 1e6) / peak.gflops, note: `default ${(direct.bOnly / bwdOnly).toFixed(2)}× faster` });
      }
    }
    for (const t of [x, w, b, dy]) t.dispose();
  }

  // GroupNorm: SD's [2,320,64,64] g32 (the acceptance shape, ≥ 2 GB/s) and the toy U-Net's at batch 64; the fused
  // one-dispatch kernel (default) against the two-dispatch statistics + apply path (settings.fuse off), each
  // plain and with the SiLU every resnet applies after it (fused into the norm, or a separate launch).
  for (const [shape, groups] of [[[2, 320, 64, 64], 32], [[64, 16, 8, 8], 4], [[64, 32, 4, 4], 4]] as [number[], number][]) {
    const gen = new Generator(6);
    const n = shape.reduce((p, q) => p * q, 1);
    const c = shape[1];
    const x = Tensor.fromArray(gen.normalArray(n), shape);
    const gw = Tensor.fromArray(gen.normalArray(c), [c]);
    const gb = Tensor.fromArray(gen.normalArray(c), [c]);
    for (const act of ['none', 'silu'] as const) {
      for (const fuse of [true, false]) {
        const t = await withSettings({ fuse }, () => timeIt(() => noGrad(() => groupNorm(x, groups, { weight: gw, bias: gb, eps: 1e-5, activation: act })).dispose(), { software, samples: 15 }));
        const gbps = (2 * n * 4) / (t.ms * 1e6);
        rows.push({
          what: `groupNorm${act === 'silu' ? '+SiLU' : ''} [${shape}] g${groups} fwd`, impl: `${fuse ? `fused ${groupNormPlanName()}` : 'stats + apply'}${act === 'silu' && !fuse ? ' + silu' : ''}${fuse ? ' (default)' : ''}`,
          rate: gbps, unit: 'GB/s', ms: t.ms, reps: t.reps, peakFraction: gbps / peak.gbps,
        });
      }
    }
    [x, gw, gb].forEach((t) => t.dispose());
  }

  printTable(['what', 'impl', 'rate', 'ms', 'reps', '% peak', 'note'],
    rows.map((r) => [r.what, r.impl, `${r.rate.toFixed(r.rate < 10 ? 2 : 0)} ${r.unit}`, r.ms.toFixed(3), String(r.reps), pct(r.peakFraction), r.note ?? '']));
  if (notes.length) console.log(`notes:\n- ${notes.join('\n- ')}`);
  console.log(`wrote ${writeSection(s, 'conv', { date: new Date().toISOString(), adapter, software, peak, samples, rows, notes })}`);
}

describe('conv', () => {
  bench('conv2d + groupNorm suite (table above)', async () => {
    await runSuite();
  }, { iterations: 1, warmupIterations: 0, time: 0, warmupTime: 0 });
});
