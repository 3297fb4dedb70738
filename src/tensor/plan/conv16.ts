// Planning for the fragment conv2d (kernels/conv2d_f16.wgsl): the implicit GEMM of each mode, its
// tile (static or autotuned per shape bucket, like the fragment matmul whose tile space it shares),
// split-K, and when the f32 conv should take this 'gemm' variant instead of conv2d.wgsl's `tiled`.
import { LpoError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu, type Dispatch, type Gpu } from '../../gpu/runtime.js';
import { settings } from '../../settings.js';
import { fragModule, parseTileId, tileId, tileM, tileN, type FragTile, type StoreType } from './frag.js';
import { mm16Candidates, noTail, splitPlanFor, staticMm16Tile } from './mm16.js';
import { fragAutotuneEnabled, fragAutotuner, measureDispatches } from './mm16-tune.js';
import { matmulGeometry } from './matmul.js';

/** A conv2d's geometry (NCHW, groups 1): input, weights, stride, padding [top, bottom, left, right], output size. */
export interface ConvGeometry {
  n: number; c: number; h: number; w: number; o: number; kh: number; kw: number;
  sh: number; sw: number; pad: readonly [number, number, number, number]; oh: number; ow: number;
}

export type ConvMode = 0 | 1 | 2;

/** Storage types: src0, src1 and dst of the mode (see the kernel), FT the staging type. */
export interface Conv16Types { T0: StoreType; T1: StoreType; TD: StoreType; FT: StoreType }

export const P = defineParams('conv2d_f16.wgsl', 'Params', {
  n: 'u32', c: 'u32', h: 'u32', w: 'u32', o: 'u32', oh: 'u32', ow: 'u32', pad_t: 'u32',
  pad_l: 'u32', m: 'u32', ncols: 'u32', k: 'u32', has_bias: 'u32', kc: 'u32', splits: 'u32',
});

/** Rows, columns and k of the implicit GEMM of a mode (0 forward, 1 dx, 2 dw). */
export function convGemmDims(mode: ConvMode, g: ConvGeometry): { m: number; ncols: number; k: number } {
  if (mode === 0) return { m: g.o, ncols: g.n * g.oh * g.ow, k: g.c * g.kh * g.kw };
  if (mode === 1) return { m: g.c, ncols: g.n * g.h * g.w, k: g.o * g.kh * g.kw };
  return { m: g.o, ncols: g.c * g.kh * g.kw, k: g.n * g.oh * g.ow };
}

/** The GEMM dims as a matmul geometry (the fragment matmul's tile heuristics and candidates apply as is). */
const asMatmul = (d: { m: number; ncols: number; k: number }) => noTail(matmulGeometry(d.m, d.k, d.ncols));

/**
 * Whether an f32 conv on a GPU should run as the fragment 'gemm' variant: when conv2d.wgsl's `tiled`
 * (64×64 tiles, no split) would launch fewer than ~2 workgroups per SM — the 16×16 and 8×8 levels of
 * SD1.5 (1280 channels) — since split-K then fills the device.
 */
export function preferGemmConv(g: ConvGeometry, G: Gpu = gpu()): boolean {
  if (G.isSoftware || !G.acquired.hasSubgroups) return false;
  const d = convGemmDims(0, g);
  return Math.ceil(d.ncols / 64) * Math.ceil(d.m / 64) < 2 * settings.gpuSms;
}

export interface Conv16Buffers { src0: GPUBuffer; src1: GPUBuffer; bias: GPUBuffer; dst: GPUBuffer; scratch?: GPUBuffer }

/** The dispatches of one mode under a tile. */
export function planConv16(mode: ConvMode, t: FragTile, g: ConvGeometry, types: Conv16Types, hasBias: boolean, bufs: Conv16Buffers, G: Gpu = gpu()): Dispatch[] {
  const d = convGemmDims(mode, g);
  const { splits, kc } = splitPlanFor(t, asMatmul(d));
  const split = splits > 1;
  if (split && !bufs.scratch) throw new LpoError('conv2d f16: split-K plan without scratch');
  const constants = { KH: g.kh, KW: g.kw, SH: g.sh, SW: g.sw, MODE: mode, SPLIT: split ? 1 : 0 };
  const params = P.of({ n: g.n, c: g.c, h: g.h, w: g.w, o: g.o, oh: g.oh, ow: g.ow, pad_t: g.pad[0], pad_l: g.pad[2], m: d.m, ncols: d.ncols, k: d.k, has_bias: hasBias ? 1 : 0, kc, splits });
  const name = (td: StoreType) => `conv2d_f16.${tileId({ ...t, split: 1 })}.${types.T0}${types.T1}${td}${types.FT}`;
  const tx = Math.ceil(d.ncols / tileN(t));
  if (tx > G.device.limits.maxComputeWorkgroupsPerDimension) throw new LpoError(`conv2d f16: ${d.ncols} output columns need ${tx} column tiles (more than a dispatch dimension holds)`);
  const gemm: Dispatch = {
    kernel: { name: name(split ? 'f32' : types.TD), code: fragModule('conv2d_f16', t, { ...types, TD: split ? 'f32' : types.TD }, {}, G), entry: 'gemm', constants },
    buffers: [bufs.src0, bufs.src1, bufs.bias, split ? bufs.scratch! : bufs.dst],
    params,
    workgroups: [tx, Math.ceil(d.m / tileM(t)), splits],
  };
  if (!split) return [gemm];
  const wg = t.WM * t.WN * (t.unit === 'sm' ? G.summary.subgroupMaxSize : 1);
  return [gemm, {
    kernel: { name: `${name(types.TD)}.splitk`, code: fragModule('conv2d_f16', t, { ...types }, {}, G), entry: 'splitk_reduce', constants },
    buffers: [bufs.scratch!, bufs.bias, bufs.dst],
    params,
    workgroups: Math.ceil((d.m * d.ncols) / wg),
  }];
}

export function conv16ScratchElems(mode: ConvMode, t: FragTile, g: ConvGeometry): number {
  const d = convGemmDims(mode, g);
  const { splits } = splitPlanFor(t, asMatmul(d));
  return splits > 1 ? splits * d.m * d.ncols : 0;
}

/** Records one mode under `t` (split-K scratch from the pool). */
export function launchConv16(mode: ConvMode, t: FragTile, g: ConvGeometry, types: Conv16Types, bufs: { src0: GPUBuffer; src1: GPUBuffer; bias?: GPUBuffer; dst: GPUBuffer }): void {
  const G = gpu();
  const se = conv16ScratchElems(mode, t, g);
  const scratch = se > 0 ? G.pool.acquire(se * 4, 'conv2d_f16.splitk') : undefined;
  // Without a bias any read-only buffer of the dispatch stands in (has_bias = 0).
  for (const x of planConv16(mode, t, g, types, !!bufs.bias, { src0: bufs.src0, src1: bufs.src1, bias: bufs.bias ?? bufs.src1, dst: bufs.dst, scratch }, G)) G.dispatch(x);
  if (scratch) G.pool.release(scratch);
}

const p2 = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));

export function conv16Bucket(mode: ConvMode, g: ConvGeometry, types: Conv16Types): string {
  const d = convGemmDims(mode, g);
  return `m${mode}.${p2(d.m)}x${p2(d.ncols)}x${p2(d.k)}.k${g.kh}x${g.kw}s${g.sh}x${g.sw}.${types.T0}${types.T1}${types.TD}${types.FT}`;
}

function measureConv16(mode: ConvMode, id: string, g: ConvGeometry, types: Conv16Types): Promise<number> {
  const t = parseTileId(id);
  const by = (s: StoreType) => (s === 'f16' ? 2 : 4);
  const xs = g.n * g.c * g.h * g.w;
  const ws = g.o * g.c * g.kh * g.kw;
  const ys = g.n * g.o * g.oh * g.ow;
  const [s0, s1, sd] = mode === 0 ? [xs, ws, ys] : mode === 1 ? [ys, ws, xs] : [xs, ys, ws];
  const sizes = [s0 * by(types.T0), s1 * by(types.T1), g.o * 4, sd * by(types.TD), conv16ScratchElems(mode, t, g) * 4];
  return measureDispatches(([src0, src1, bias, dst, scratch]) => planConv16(mode, t, g, types, false, { src0, src1, bias, dst, scratch }), sizes);
}

/** Starts tuning this mode's bucket (if new); resolves when tuned (bench awaits it). */
export function autotuneConv16(mode: ConvMode, g: ConvGeometry, types: Conv16Types): Promise<unknown> {
  if (!fragAutotuneEnabled()) return Promise.resolve(undefined);
  const geo = { ...g };
  return fragAutotuner('conv2d_f16').request(conv16Bucket(mode, g, types), () => mm16Candidates(asMatmul(convGemmDims(mode, geo)), types.FT), (id) => measureConv16(mode, id, geo, types));
}

/** The tile of a mode: forced, else tuned (GPUs), else the fragment matmul's static tile for the GEMM dims. */
export function chooseConv16Tile(mode: ConvMode, g: ConvGeometry, types: Conv16Types, forced?: string): FragTile {
  if (forced) return parseTileId(forced);
  const G = gpu();
  if (fragAutotuneEnabled(G)) {
    const id = fragAutotuner('conv2d_f16').get(conv16Bucket(mode, g, types));
    if (id) return parseTileId(id);
    const d = convGemmDims(mode, g);
    if (settings.autotune === 'background' && 2 * d.m * d.ncols * d.k >= 2 ** 22) void autotuneConv16(mode, g, types);
  }
  return staticMm16Tile(asMatmul(convGemmDims(mode, g)), types.FT, G);
}
