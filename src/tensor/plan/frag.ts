// Planning for the fragment kernels (kernels/{matmul,conv2d,attention}_f16.wgsl): which matrix unit
// multiplies (subgroup matrices = tensor cores, or plain WGSL), the tile of one workgroup, and the
// WGSL module for a (family, tile, storage types) triple. The per-family planners (./mm16.ts,
// ./conv16.ts, ./attn16.ts) build their candidates and dispatches on top of this.
//
// A tile is written as an id: 'sm16x16x16/w4x2/t2x4/k32/s2' = subgroup-matrix fragments of 16×16×16,
// 4 × 2 fragment owners ("warps") per workgroup, 2 × 4 fragments per warp, 32 k per stage, split-K 2.
// 'simt8x8x8/…' is the plain-WGSL unit (one invocation per warp).
import { ArgumentError, LpoError } from '../../errors.js';
import { gpu, type Gpu } from '../../gpu/runtime.js';
import { kernelModule, type KernelFile, type LibFile } from '../../gpu/wgsl.js';
import { settings } from '../../settings.js';

export type FragUnit = 'sm' | 'simt';
export type StoreType = 'f16' | 'f32';

export interface FragTile {
  unit: FragUnit;
  /** Fragment: FM × FK times FK × FN. */
  FM: number; FN: number; FK: number;
  /** Warps along M and N, fragments per warp along M and N. */
  WM: number; WN: number; TM: number; TN: number;
  /** k per stage (a multiple of FK). */
  BK: number;
  /** Split-K slices (1: none). */
  split: number;
}

export const tileM = (t: FragTile) => t.WM * t.TM * t.FM;
export const tileN = (t: FragTile) => t.WN * t.TN * t.FN;

export function tileId(t: FragTile): string {
  return `${t.unit}${t.FM}x${t.FN}x${t.FK}/w${t.WM}x${t.WN}/t${t.TM}x${t.TN}/k${t.BK}${t.split > 1 ? `/s${t.split}` : ''}`;
}

export function parseTileId(id: string): FragTile {
  const m = /^(sm|simt)(\d+)x(\d+)x(\d+)\/w(\d+)x(\d+)\/t(\d+)x(\d+)\/k(\d+)(?:\/s(\d+))?$/.exec(id);
  if (!m) throw new ArgumentError(`fragment tile '${id}': expected e.g. 'sm16x16x16/w4x2/t2x4/k32' or 'simt8x8x8/w4x4/t1x1/k16/s2'`);
  const n = m.slice(2).map((x) => (x === undefined ? 1 : Number(x)));
  const t: FragTile = { unit: m[1] as FragUnit, FM: n[0], FN: n[1], FK: n[2], WM: n[3], WN: n[4], TM: n[5], TN: n[6], BK: n[7], split: n[8] };
  if (t.BK % t.FK !== 0 || [t.FM, t.FN, t.FK, t.WM, t.WN, t.TM, t.TN, t.BK, t.split].some((v) => !Number.isInteger(v) || v < 1)) {
    throw new ArgumentError(`fragment tile '${id}': positive sizes with BK a multiple of FK required`);
  }
  return t;
}

/** f16→f32 subgroup-matrix shapes usable here: [M, N, K] (empty without the feature or a fixed subgroup size). */
export function smShapes(g: Gpu = gpu()): [number, number, number][] {
  const a = g.acquired;
  const s = a.summary;
  if (!a.hasSubgroupMatrix || !a.hasF16 || !a.hasSubgroups || s.subgroupMinSize !== s.subgroupMaxSize || s.subgroupMinSize < 1) return [];
  return s.subgroupMatrixConfigs.filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32').map((c) => [c.M, c.N, c.K]);
}

/**
 * The unit the f16 kernels use: settings.fragUnit ('sm' forced fails where the device has no
 * subgroup matrices), else subgroup matrices where offered, else plain WGSL.
 */
export function fragUnit(g: Gpu = gpu()): FragUnit {
  const has = smShapes(g).length > 0;
  if (settings.fragUnit === 'sm' && !has) throw new LpoError("LPO_FRAG=sm: this device offers no f16→f32 subgroup-matrix configuration (see 'lpo doctor')");
  if (settings.fragUnit === 'simt') return 'simt';
  return has ? 'sm' : 'simt';
}

/** Invocations per fragment owner: the subgroup size for subgroup matrices, 1 in plain WGSL. */
export function invocationsPerWarp(t: FragTile, g: Gpu = gpu()): number {
  return t.unit === 'sm' ? g.summary.subgroupMaxSize : 1;
}

/** Whether the fragment kernels can run at all (they take `subgroup_id`; f16 staging needs shader-f16). */
export function fragKernelsAvailable(ft: StoreType, g: Gpu = gpu()): boolean {
  return g.acquired.hasSubgroups && (ft === 'f32' || g.acquired.hasF16);
}

/** Refuses a tile this device cannot run (unit, shape, workgroup size). */
export function checkTile(t: FragTile, g: Gpu = gpu()): void {
  if (t.unit === 'sm' && !smShapes(g).some(([M, N, K]) => M === t.FM && N === t.FN && K === t.FK)) {
    throw new LpoError(`fragment tile ${tileId(t)}: no ${t.FM}×${t.FN}×${t.FK} f16 subgroup-matrix configuration on this device`);
  }
  const wg = t.WM * t.WN * invocationsPerWarp(t, g);
  if (wg > g.device.limits.maxComputeInvocationsPerWorkgroup) throw new LpoError(`fragment tile ${tileId(t)}: ${wg} invocations per workgroup exceed the device limit`);
}

/** The WGSL module of a fragment family for a tile and storage types (memoized by kernelModule). */
export function fragModule(
  family: KernelFile, t: FragTile, types: Readonly<Record<string, StoreType>>, consts: Readonly<Record<string, number>> = {}, g: Gpu = gpu(),
): string {
  const libs: LibFile[] = ['unary', 'half', t.unit === 'sm' ? 'frag_sm' : 'frag_simt', ...(family === 'attention_f16' ? [] : ['frag_gemm' as const])];
  if (t.unit === 'sm' && types.FT !== 'f16') throw new ArgumentError('subgroup-matrix fragments stage f16 operands (FT = f16)');
  return kernelModule(family, {
    libs,
    types,
    consts: { FM: t.FM, FN: t.FN, FK: t.FK, SG: invocationsPerWarp(t, g), WM: t.WM, WN: t.WN, TM: t.TM, TN: t.TN, BK: t.BK, ...consts },
  });
}

/** Bytes of workgroup memory a tile's GEMM staging takes (A and B blocks, padded, plus the result slots). */
export function gemmStageBytes(t: FragTile, ft: StoreType): number {
  const BM = tileM(t);
  const BN = tileN(t);
  const pad = 8;
  const aLen = Math.max(BM * (t.BK + pad), t.BK * (BM + pad));
  const bLen = Math.max(t.BK * (BN + pad), BN * (t.BK + pad));
  return (aLen + bLen) * (ft === 'f16' ? 2 : 4) + t.WM * t.WN * t.FM * t.FN * 4;
}

/**
 * The plain-WGSL fragment: 4×4×4 (16 accumulators per fragment; warps take TM × TN of them). Larger
 * fragments unroll into code that lavapipe's LLVM takes tens of seconds to compile.
 */
export function simtFragment(_ft: StoreType): Pick<FragTile, 'unit' | 'FM' | 'FN' | 'FK'> {
  return { unit: 'simt', FM: 4, FN: 4, FK: 4 };
}
