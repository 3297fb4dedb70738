// The f16 / tensor-core suite (issue 12): f16 matmul, conv2d (f16, and the f32 conv at SD1.5's levels
// where the split-K 'gemm' variant takes over) and flash attention, at the shapes of the acceptance
// list, timed like every suite (bench/common.ts). The keys match bench/torch_peer_f16.py's, so
// scripts/f16-ratios.py can divide them; the section goes to bench/results/<adapter>.json and, with
// LPO_BENCH_F16_OUT set (scripts/gpu-check.sh), to that file too. On GPUs each shape bucket is autotuned
// before it is timed. On lavapipe small stand-ins run (labelled), unless LPO_BENCH_FULL=1.
// The lavapipe stand-ins take ~10 min on 2 loaded cores (pipeline builds and tuning dominate), so the local
// dry run of the device check (scripts/gpu-check.sh dryrun) leaves this suite out.
import { writeFileSync } from 'node:fs';
import { fullShapesOnSoftware, machineInfo, printTable, timeIt, writeSection } from './common.js';
import { initGpu } from '../src/gpu/runtime.js';
import { describeMatrixConfigs } from '../src/gpu/device.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { matmulF16 } from '../src/tensor/ops/matmul_f16.js';
import { conv2dFrag, type ConvGeometry } from '../src/tensor/ops/conv2d_f16.js';
import { attentionF16 } from '../src/tensor/ops/attention_f16.js';
import { conv2d } from '../src/tensor/ops/conv2d.js';
import { backward, noGrad, requireGrad } from '../src/autograd/tape.js';
import { fragUnit, fragKernelsAvailable } from '../src/tensor/plan/frag.js';
import { autotuneMm16, currentMm16Tile, fragAutotuner } from '../src/tensor/plan/mm16-tune.js';
import { noTail } from '../src/tensor/plan/mm16.js';
import { matmulGeometry } from '../src/tensor/plan/matmul.js';
import { autotuneConv16, chooseConv16Tile } from '../src/tensor/plan/conv16.js';
import { autotuneAttn16, chooseAttn16Tile } from '../src/tensor/plan/attn16.js';
import { tileId } from '../src/tensor/plan/frag.js';
import { preferGemmConv } from '../src/tensor/plan/conv16.js';
import { settings } from '../src/settings.js';

interface Row { key: string; what: string; impl: string; ms: number; tflops: number; reps: number }

const MM: [number, number, number][] = [[4096, 320, 1280], [4096, 1280, 320], [1024, 768, 3072], [2048, 2048, 2048]];
const LEVELS: [number, number][] = [[64, 320], [32, 640], [16, 1280], [8, 1280]];

export async function runSuite(): Promise<Record<string, unknown>> {
  const g = await initGpu();
  const s = g.summary;
  const software = s.isSoftware;
  const full = !software || fullShapesOnSoftware;
  const samples = software ? 3 : 15;
  const rows: Row[] = [];
  const info: Record<string, unknown> = { ...machineInfo(s), unit: fragKernelsAvailable('f16') ? fragUnit() : 'unavailable', matrices: describeMatrixConfigs(s.subgroupMatrixConfigs), full };
  console.log(`\nf16 bench on ${info.adapter}; fragment unit ${info.unit}; ${info.matrices}${full ? '' : ' (lavapipe stand-in shapes)'}`);
  if (!fragKernelsAvailable('f16')) return { ...info, rows };
  const gen = new Generator(1);
  const f16 = (shape: number[], std = 1) => Tensor.fromArray(gen.normalArray(shape.reduce((a, b) => a * b, 1), 0, std), shape, 'f16');
  const add = (key: string, what: string, impl: string, flops: number, t: { ms: number; reps: number }) => {
    rows.push({ key, what, impl, ms: t.ms, reps: t.reps, tflops: flops / (t.ms * 1e9) });
  };

  // Matmul f16 (f16 in, f16 out, f32 accumulation), like torch.mm on fp16 tensors.
  for (const [M0, K0, N0] of full ? MM : [[256, 128, 192] as [number, number, number]]) {
    const [M, K, N] = [M0, K0, N0];
    const a = f16([M, K]);
    const b = f16([K, N]);
    const types = { TA: 'f16', TB: 'f16', TC: 'f16', FT: 'f16' } as const;
    const geo = noTail(matmulGeometry(M, K, N));
    const flags = { act: 'none' as const, hasBias: false, transA: false, transB: false, alpha: 1 };
    await autotuneMm16(geo, flags, types);
    const t = await timeIt(() => matmulF16(a, b).dispose(), { software, samples });
    add(`mm.${M}x${K}x${N}.f16`, `matmul ${M}×${K}×${N}`, currentMm16Tile(geo, flags, types), 2 * M * N * K, t);
    a.dispose();
    b.dispose();
  }

  // Conv 3×3 at SD1.5's levels, batch 2: f16 forward (and dx + dw), and the f32 conv as planned (gemm at low resolution) vs `tiled`.
  for (const [hw0, c0] of full ? LEVELS : [[8, 32] as [number, number]]) {
    const [hw, c] = [hw0, c0];
    const geo: ConvGeometry = { n: 2, c, h: hw, w: hw, o: c, kh: 3, kw: 3, sh: 1, sw: 1, pad: [1, 1, 1, 1], oh: hw, ow: hw };
    const flops = 2 * 2 * c * c * 9 * hw * hw;
    const x = requireGrad(f16([2, c, hw, hw]));
    const w = f16([c, c, 3, 3], 0.05);
    const dy = f16([2, c, hw, hw]);
    const types = { T0: 'f16', T1: 'f16', TD: 'f16', FT: 'f16' } as const;
    for (const mode of [0, 1, 2] as const) await autotuneConv16(mode, geo, mode === 0 ? types : { ...types, TD: 'f32' });
    const fwd = await timeIt(() => noGrad(() => conv2dFrag(x, w, null, geo)).dispose(), { software, samples });
    const key = `conv3x3.${hw}x${hw}x${c}.b2`;
    add(`${key}.f16`, `conv3x3 ${hw}×${hw}×${c} b2 fwd`, tileId(chooseConv16Tile(0, geo, types)), flops, fwd);
    // dx alone: one recorded forward, its graph kept, the backward timed (a difference fwd+bwd − fwd of two
    // noisy medians can come out ≤ 0). The peer times cuDNN's dgrad the same way.
    const y = conv2dFrag(x, w, null, geo);
    const dx = await timeIt(() => {
      backward(y, dy, { retainGraph: true });
      x.grad?.dispose();
      x.grad = null;
    }, { software, samples });
    backward(y, dy); // frees the graph
    y.dispose();
    x.grad?.dispose();
    x.grad = null;
    add(`${key}.f16.dx`, `conv3x3 ${hw}×${hw}×${c} b2 dx`, 'f16', flops, dx);
    const x32 = Tensor.fromArray(await x.toArray(), x.shape);
    const w32 = Tensor.fromArray(await w.toArray(), w.shape);
    const types32 = { T0: 'f32', T1: 'f32', TD: 'f32', FT: 'f32' } as const;
    if (preferGemmConv(geo)) await autotuneConv16(0, geo, types32);
    const planned = preferGemmConv(geo) ? `gemm ${tileId(chooseConv16Tile(0, geo, types32))}` : 'tiled';
    add(`${key}.f32`, `conv3x3 ${hw}×${hw}×${c} b2 fwd f32`, planned, flops, await timeIt(() => noGrad(() => conv2d(x32, w32, null, { padding: 1 })).dispose(), { software, samples }));
    if (!software) add(`${key}.f32.tiled`, `conv3x3 ${hw}×${hw}×${c} b2 fwd f32`, 'tiled (forced)', flops, await timeIt(() => noGrad(() => conv2d(x32, w32, null, { padding: 1, variant: 'tiled' })).dispose(), { software, samples }));
    for (const t of [x, w, dy, x32, w32]) t.dispose();
  }

  // Flash attention f16, 8 heads of 40 (SD1.5's first level): forward, and forward + backward.
  const L = full ? 4096 : 256;
  const H = full ? 8 : 2;
  const d = { B: 1, H, Lq: L, Lk: L, D: 40, causal: false };
  const q = requireGrad(f16([1, L, H * 40]));
  const k = requireGrad(f16([1, L, H * 40]));
  const v = requireGrad(f16([1, L, H * 40]));
  const dO = f16([1, L, H * 40]);
  const aTypes = { TQ: 'f16', TG: 'f32', TY: 'f32', TO: 'f16', FT: 'f16' } as const;
  await autotuneAttn16('fwd', d, aTypes);
  await autotuneAttn16('bwd', d, { ...aTypes, TG: 'f16', TY: 'f16', TO: 'f32' });
  const aflops = 4 * H * L * L * 40;
  add(`sdpa.${L}.d40h${H}.f16.fwd`, `attention ${L}² d40 h${H} fwd`, tileId(chooseAttn16Tile('fwd', d, aTypes)), aflops,
    await timeIt(() => noGrad(() => attentionF16(q, k, v, H)).dispose(), { software, samples }));
  add(`sdpa.${L}.d40h${H}.f16.fwdbwd`, `attention ${L}² d40 h${H} fwd+bwd`, 'f16', 3.5 * aflops, await timeIt(() => {
    const y = attentionF16(q, k, v, H);
    backward(y, dO);
    y.dispose();
    for (const t of [q, k, v]) { t.grad?.dispose(); t.grad = null; }
  }, { software, samples }));
  for (const t of [q, k, v, dO]) t.dispose();
  await Promise.all((['matmul_f16', 'conv2d_f16', 'attention_f16'] as const).map((f) => fragAutotuner(f).idle()));

  printTable(['what', 'impl / tile', 'ms', 'TFLOP/s'], rows.map((r) => [r.what, r.impl, r.ms.toFixed(4), r.tflops.toFixed(2)]));
  const section = { ...info, date: new Date().toISOString(), rows };
  const file = writeSection(s, 'f16', section);
  if (settings.bench.f16Out) writeFileSync(settings.bench.f16Out, JSON.stringify(section, null, 2));
  console.log(`wrote the 'f16' section of ${file}${settings.bench.f16Out ? ` and ${settings.bench.f16Out}` : ''}`);
  return section;
}
