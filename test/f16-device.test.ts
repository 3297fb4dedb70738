// Compile checks of the fragment kernels on the device: every entry point of each family, for every
// tile the autotuner may try at SD1.5 shapes, must build (WGSL validation, uniformity analysis and the
// driver's pipeline creation). On a device with subgroup matrices this covers the tensor-core modules
// that the numeric tests only sample; on lavapipe it builds the entry points no numeric test reaches
// with the plain-WGSL fragments (f16 attention's split dk/dv sum, f16 conv splits), so the family text is
// checked everywhere. Building only: nothing is dispatched.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { setupGpu } from './helpers.js';
import type { Dispatch } from '../src/gpu/runtime.js';
import { gpu } from '../src/gpu/runtime.js';
import { parseTileId, smShapes, tileId, type FragTile } from '../src/tensor/plan/frag.js';
import { mm16Candidates, noTail, planMm16 } from '../src/tensor/plan/mm16.js';
import { matmulGeometry } from '../src/tensor/plan/matmul.js';
import { planConv16, type ConvGeometry } from '../src/tensor/plan/conv16.js';
import { attn16Candidates, planAttn16Backward, planAttn16Forward, type AttnDims } from '../src/tensor/plan/attn16.js';

const g0 = await setupGpu();
const canRun = g0.acquired.hasF16 && g0.acquired.hasSubgroups;
const sm = canRun ? smShapes(g0) : [];
beforeAll(setupGpu);
vi.setConfig({ testTimeout: 600_000 });

let fake: GPUBuffer;
const buf = () => (fake ??= gpu().device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE }));

async function buildAll(ds: Dispatch[]): Promise<string[]> {
  const failed: string[] = [];
  for (const d of ds) {
    try {
      await gpu().pipelines.build(d.kernel);
    } catch (e) {
      failed.push(`${d.kernel.name}:${d.kernel.entry}: ${(e as Error).message.slice(0, 400)}`);
    }
  }
  return failed;
}

function matmulPlans(t: FragTile): Dispatch[] {
  const b = buf();
  const g = { ...noTail(matmulGeometry(300, 1000, 200)), K2: 4, sb2k: 1, sb2n: 4 };
  const out: Dispatch[] = [];
  for (const [transA, transB] of [[false, false], [true, false], [false, true]]) {
    for (const types of [{ TA: 'f16', TB: 'f16', TC: 'f16', FT: 'f16' }, { TA: 'f32', TB: 'f16', TC: 'f32', FT: 'f16' }] as const) {
      out.push(...planMm16({ ...t, split: 2 }, { ...g, K2: transA ? 0 : 4 }, { act: 'gelu', hasBias: true, transA, transB, alpha: 1 }, types, { a: b, b, bias: b, c: b, a2: b, b2: b, scratch: b }));
    }
  }
  return out;
}

function convPlans(t: FragTile): Dispatch[] {
  const b = buf();
  const g: ConvGeometry = { n: 2, c: 40, h: 9, w: 9, o: 48, kh: 3, kw: 3, sh: 1, sw: 1, pad: [1, 1, 1, 1], oh: 9, ow: 9 };
  const out: Dispatch[] = [];
  for (const mode of [0, 1, 2] as const) {
    const types = { T0: 'f16', T1: 'f16', TD: mode === 0 ? 'f16' : 'f32', FT: 'f16' } as const;
    for (const split of [1, 2]) out.push(...planConv16(mode, { ...t, split }, g, types, mode === 0, { src0: b, src1: b, bias: b, dst: b, scratch: b }));
  }
  return out;
}

function attnPlans(t: FragTile): Dispatch[] {
  const b = buf();
  const d: AttnDims = { B: 1, H: 8, Lq: 300, Lk: 77, D: 40, causal: false };
  const types = { TQ: 'f16', TG: 'f32', TY: 'f16', TO: 'f32', FT: 'f16' } as const;
  const bufs = { q: b, k: b, v: b, o: b, lse: b, dy: b, delta: b, dq: b, dk: b, dv: b, pk: b, pv: b };
  return [
    planAttn16Forward(t, d, { ...types, TO: 'f16' }, 0.2, bufs),
    planAttn16Forward(t, { ...d, causal: true }, types, 0.2, bufs),
    ...planAttn16Backward(t, d, types, 0.2, 2, bufs),
  ];
}

describe.skipIf(!canRun)('fragment kernels build (plain-WGSL fragments)', () => {
  it('matmul, conv2d (3 modes, split) and attention (forward, causal, backward with the split sum)', async () => {
    const t = parseTileId('simt4x4x4/w2x2/t1x1/k8');
    const failed = await buildAll([...matmulPlans(t), ...convPlans(t), ...attnPlans(parseTileId('simt4x4x4/w4x1/t1x1/k8'))]);
    expect(failed, failed.join('\n')).toEqual([]);
  });
});

describe.skipIf(sm.length === 0)('fragment kernels build on subgroup matrices (tensor cores)', () => {
  it("every autotune candidate of SD1.5's shapes, every entry point", async () => {
    const G = gpu();
    const mmTiles = new Set([
      ...mm16Candidates(noTail(matmulGeometry(4096, 320, 1280)), 'f16', G),
      ...mm16Candidates(noTail(matmulGeometry(128, 11520, 1280)), 'f16', G),
    ].map((id) => tileId({ ...parseTileId(id), split: 1 })));
    const failed: string[] = [];
    for (const id of mmTiles) failed.push(...await buildAll([...matmulPlans(parseTileId(id)), ...convPlans(parseTileId(id))]));
    for (const id of attn16Candidates(40, G)) failed.push(...await buildAll(attnPlans(parseTileId(id))));
    console.log(`built ${mmTiles.size} GEMM tiles × (matmul + conv) and ${attn16Candidates(40, G).length} attention tiles; ${failed.length} failures; shapes ${JSON.stringify(sm)}`);
    expect(failed, failed.join('\n')).toEqual([]);
  });
});
