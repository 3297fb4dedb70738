// Planning for the fragment matmul (kernels/matmul_f16.wgsl): f16 operands, f32 accumulation, A/B/C
// stored as f16 or f32, an optional LoRA tail segment, split-K. The op (src/tensor/ops/matmul_f16.ts)
// asks chooseMm16Tile (./mm16-tune.ts) for a tile and calls launchMm16.
import { ArgumentError, LpoError } from '../../errors.js';
import { opcode } from '../../gpu/opcodes.js';
import { defineParams } from '../../gpu/params.js';
import { gpu, type Dispatch, type Gpu } from '../../gpu/runtime.js';
import { settings } from '../../settings.js';
import type { MatmulActivation, MatmulGeometry } from './matmul.js';
import {
  fragModule, fragUnit, gemmStageBytes, parseTileId, simtFragment, smShapes, tileId, tileM, tileN,
  type FragTile, type FragUnit, type StoreType,
} from './frag.js';

/** A product's geometry (as matmul's) plus the tail: K2 extra k with A2 [M, K2] row-major and B2 (k, n) ↦ k·sb2k + n·sb2n. */
export interface Mm16Geometry extends MatmulGeometry { K2: number; sb2k: number; sb2n: number }

export interface Mm16Flags { act: MatmulActivation; hasBias: boolean; transA: boolean; transB: boolean; alpha: number }

/** Storage types: A, B, C (f16 or f32); operands are staged as FT (f16; f32 only in plain WGSL). */
export interface Mm16Types { TA: StoreType; TB: StoreType; TC: StoreType; FT: StoreType }

export interface Mm16Buffers { a: GPUBuffer; b: GPUBuffer; bias: GPUBuffer; c: GPUBuffer; a2: GPUBuffer; b2: GPUBuffer; scratch?: GPUBuffer }

export const P = defineParams('matmul_f16.wgsl', 'Params', {
  M: 'u32', N: 'u32', K: 'u32', batch: 'u32', sam: 'u32', sak: 'u32', sbk: 'u32', sbn: 'u32',
  a_bs: 'u32', b_bs: 'u32', K2: 'u32', sb2k: 'u32', sb2n: 'u32', kc: 'u32', splits: 'u32', has_bias: 'u32', alpha: 'f32',
});

/** A geometry without a tail. */
export function noTail(g: MatmulGeometry): Mm16Geometry {
  return { ...g, K2: 0, sb2k: 0, sb2n: 0 };
}

/** Split count actually used and the k per slice (a multiple of BK) over K + K2; batch·splits ≤ 65535. */
export function splitPlanFor(t: FragTile, g: Mm16Geometry): { splits: number; kc: number } {
  const Kt = g.K + g.K2;
  let s = Math.max(1, Math.min(t.split, Math.ceil(Kt / t.BK), Math.floor(65535 / Math.max(1, g.batch))));
  if (s <= 1) return { splits: 1, kc: Math.max(Kt, 1) };
  const kc = Math.ceil(Math.ceil(Kt / s) / t.BK) * t.BK;
  s = Math.ceil(Kt / kc);
  return s <= 1 ? { splits: 1, kc: Math.max(Kt, 1) } : { splits: s, kc };
}

const tilesOf = (t: FragTile, g: Mm16Geometry) => Math.ceil(g.M / tileM(t)) * Math.ceil(g.N / tileN(t)) * g.batch;

/** Split-K by the heuristic: ~2 workgroups per SM, ≥ 4 stages per slice. */
function heuristicSplit(t: FragTile, g: Mm16Geometry, sms: number): number {
  let s = 1;
  while (s < 16 && tilesOf(t, g) * s * 2 <= 2 * sms && (g.K + g.K2) / (s * 2) >= 4 * t.BK) s *= 2;
  return s;
}

/** The fragment shape of a unit: 16×16×16 (or the first f16→f32 config) on tensor cores, else simt's. */
function fragmentFor(unit: FragUnit, ft: StoreType, G: Gpu): Pick<FragTile, 'unit' | 'FM' | 'FN' | 'FK'> {
  if (unit === 'simt') return simtFragment(ft);
  const shapes = smShapes(G);
  const [FM, FN, FK] = shapes.find(([m, n, k]) => m === 16 && n === 16 && k === 16) ?? shapes[0];
  return { unit, FM, FN, FK };
}

/**
 * The static tile (no tuning). Tensor cores: 128×128 (8 warps of 2 × 4 fragments) where that fills
 * the device, else 64×64 with split-K. Plain WGSL: 8 × 8 invocations of one fragment each on GPUs,
 * 4 × 4 on software adapters (whose workgroups run on one core).
 */
export function staticMm16Tile(g: Mm16Geometry, ft: StoreType, G: Gpu = gpu()): FragTile {
  const unit = ft === 'f16' ? fragUnit(G) : 'simt';
  const f = fragmentFor(unit, ft, G);
  const sms = settings.gpuSms;
  if (unit === 'sm') {
    const big: FragTile = { ...f, WM: 4, WN: 2, TM: 2, TN: 128 / (2 * f.FN), BK: 32, split: 1 };
    if (Number.isInteger(big.TN) && tilesOf(big, g) >= 0.75 * sms) return big;
    const small: FragTile = { ...f, WM: 2, WN: 2, TM: 64 / (2 * f.FM), TN: 64 / (2 * f.FN), BK: 32, split: 1 };
    return { ...small, split: heuristicSplit(small, g, sms) };
  }
  if (G.isSoftware) return { ...f, WM: 4, WN: 4, TM: 1, TN: 1, BK: 2 * f.FK, split: 1 };
  const t: FragTile = { ...f, WM: 8, WN: 8, TM: 2, TN: 2, BK: 4 * f.FK, split: 1 }; // 64×64, 8×8 outputs per invocation
  return { ...t, split: heuristicSplit(t, g, sms) };
}

/**
 * Tiles the autotuner times for a shape: each fragment shape with 64×64 and 128×128-class warp
 * layouts, BK 32 and 64, and split-K 1, 2, 4, … while the split grid stays ≤ ~4 workgroups per SM;
 * staging must fit the device's workgroup memory.
 */
export function mm16Candidates(g: Mm16Geometry, ft: StoreType, G: Gpu = gpu()): string[] {
  const unit = ft === 'f16' ? fragUnit(G) : 'simt';
  const storage = G.device.limits.maxComputeWorkgroupStorageSize;
  const sms = settings.gpuSms;
  const out: string[] = [];
  const frags = unit === 'sm' ? smShapes(G).map(([FM, FN, FK]) => ({ unit, FM, FN, FK })) : [simtFragment(ft)];
  const layouts = unit === 'sm'
    ? [[2, 2, 2, 2], [4, 2, 2, 4], [2, 4, 4, 2], [4, 2, 2, 2], [2, 2, 4, 4]]
    : [[8, 8, 2, 2], [16, 16, 1, 1], [16, 8, 2, 2], [8, 8, 4, 4]];
  for (const f of frags) {
    for (const [WM, WN, TM, TN] of layouts) {
      for (const BK of unit === 'sm' ? [32, 64] : [16, 32]) {
        if (BK % f.FK) continue;
        const base: FragTile = { ...f, WM, WN, TM, TN, BK, split: 1 };
        if (gemmStageBytes(base, ft) > storage) continue;
        for (let s = 1; s <= 16; s *= 2) {
          if (s > 1 && (tilesOf(base, g) * s > 4 * sms || (g.K + g.K2) / s < 2 * BK)) break;
          out.push(tileId({ ...base, split: s }));
        }
      }
    }
  }
  return out;
}

/** Elements of split-K scratch a tile needs (0: none). */
export function mm16ScratchElems(t: FragTile, g: Mm16Geometry): number {
  const { splits } = splitPlanFor(t, g);
  return splits > 1 ? splits * g.batch * g.M * g.N : 0;
}

/** The dispatches (in order) of one product under a tile. */
export function planMm16(t: FragTile, g: Mm16Geometry, f: Mm16Flags, types: Mm16Types, bufs: Mm16Buffers, G: Gpu = gpu()): Dispatch[] {
  if (t.unit === 'sm' && types.FT !== 'f16') throw new ArgumentError('matmul f16: subgroup-matrix tiles stage f16');
  if (g.K2 > 0 && g.batch > 1) throw new ArgumentError('matmul f16: a tail segment needs batch 1');
  const { splits, kc } = splitPlanFor(t, g);
  const split = splits > 1;
  if (split && !bufs.scratch) throw new LpoError('matmul f16: split-K plan without scratch');
  const constants = { ACT: opcode('UNARY', f.act === 'none' ? 'identity' : f.act), TRANS_A: f.transA ? 1 : 0, TRANS_B: f.transB ? 1 : 0, SPLIT: split ? 1 : 0 };
  const params = P.of({
    M: g.M, N: g.N, K: g.K, batch: g.batch, sam: g.sam, sak: g.sak, sbk: g.sbk, sbn: g.sbn, a_bs: g.aBs, b_bs: g.bBs,
    K2: g.K2, sb2k: g.sb2k, sb2n: g.sb2n, kc, splits, has_bias: f.hasBias ? 1 : 0, alpha: f.alpha,
  });
  // Pipelines are cached by name: the name carries everything the module text depends on.
  const id = `${tileId({ ...t, split: 1 })}.${types.TA}${types.TB}${split ? 'f32' : types.TC}${types.FT}`;
  const gemm: Dispatch = {
    kernel: { name: `matmul_f16.${id}`, code: fragModule('matmul_f16', t, { ...types, TC: split ? 'f32' : types.TC }, {}, G), entry: 'gemm', constants },
    buffers: [bufs.a, bufs.b, bufs.bias, split ? bufs.scratch! : bufs.c, bufs.a2, bufs.b2],
    params,
    workgroups: [Math.ceil(g.N / tileN(t)), Math.ceil(g.M / tileM(t)), g.batch * splits],
  };
  if (!split) return [gemm];
  const wg = t.WM * t.WN * (t.unit === 'sm' ? G.summary.subgroupMaxSize : 1);
  const reduce: Dispatch = {
    kernel: { name: `matmul_f16.splitk.${tileId({ ...t, split: 1 })}.${types.TA}${types.TB}${types.TC}${types.FT}`, code: fragModule('matmul_f16', t, { ...types }, {}, G), entry: 'splitk_reduce', constants: { ACT: constants.ACT } },
    buffers: [bufs.scratch!, bufs.bias, bufs.c],
    params,
    workgroups: Math.ceil((g.M * g.N * g.batch) / wg),
  };
  return [gemm, reduce];
}

const dummies = new WeakMap<Gpu, GPUBuffer>();
/** A stand-in for absent bias / tail buffers (read only when has_bias / K2 say so; never written). */
export function dummyStorage(G: Gpu = gpu()): GPUBuffer {
  let d = dummies.get(G);
  if (!d) dummies.set(G, (d = G.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE, label: 'f16.dummy' })));
  return d;
}

/** Records one product on the stream under `t` (split-K scratch from the pool). */
export function launchMm16(
  t: FragTile, g: Mm16Geometry, f: Mm16Flags, types: Mm16Types,
  bufs: { a: GPUBuffer; b: GPUBuffer; c: GPUBuffer; bias?: GPUBuffer; a2?: GPUBuffer; b2?: GPUBuffer },
): void {
  const G = gpu();
  const se = mm16ScratchElems(t, g);
  const scratch = se > 0 ? G.pool.acquire(se * 4, 'matmul_f16.splitk') : undefined;
  const d = dummyStorage(G);
  for (const x of planMm16(t, g, f, types, { a: bufs.a, b: bufs.b, c: bufs.c, bias: bufs.bias ?? d, a2: bufs.a2 ?? d, b2: bufs.b2 ?? d, scratch }, G)) G.dispatch(x);
  if (scratch) G.pool.release(scratch);
}

export { parseTileId, tileId };
