// Matmul planning: which kernel configuration runs a product, and the dispatches that run it. The op
// (src/tensor/ops/matmul.ts) asks chooseMatmulConfig (./matmul-tune.ts) for a configuration and calls
// launchMatmul; nothing here knows about tensors or the tape.
//
// Variants (kernels/matmul*.wgsl): 'naive' (baseline), 'blocked' (no barriers, subgroupBroadcast of A
// rows; falls back to 'strip' without subgroups), 'strip' (no barriers, no subgroups) and the SGEMM
// family 'gemm128' (128×128 tiles, 8×8 per invocation), 'gemm128x64' (8×4) and 'gemm64' (64×64, 4×4):
// 256 invocations, double-buffered k slices, optional split-K (partial sums in a scratch buffer, then
// `splitk_reduce` with the epilogue). A configuration is a variant plus a split count and a k slice,
// written as an id: 'gemm64/s4' (split K in 4), 'gemm128/k16' (GBK = 16), 'strip'. Large 'blocked' products
// whose operands are not contiguous in k first copy them into k-contiguous rows (`pack_rows`, packPlan).
import { ArgumentError } from '../../errors.js';
import { LimitError } from '../../gpu/errors.js';
import { opcode } from '../../gpu/opcodes.js';
import { defineParams } from '../../gpu/params.js';
import { gpu, type BufferBinding, type Dispatch, type Gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { MATMUL_VARIANTS, settings, type MatmulVariant } from '../../settings.js';

export { MATMUL_VARIANTS, type MatmulVariant };
export type GemmVariant = 'gemm128' | 'gemm128x64' | 'gemm64';
/** The fused epilogue activations: each runs as its unary op code ('none' is identity). */
export type MatmulActivation = 'none' | 'relu' | 'gelu' | 'geluTanh' | 'silu';
export const MATMUL_ACTIVATIONS: readonly MatmulActivation[] = ['none', 'relu', 'gelu', 'geluTanh', 'silu'];

/** The SGEMM family: entry point and tile. */
const GEMM: Record<GemmVariant, { entry: string; bm: number; bn: number }> = {
  gemm128: { entry: 'gemm8x8', bm: 128, bn: 128 },
  gemm128x64: { entry: 'gemm8x4', bm: 128, bn: 64 },
  gemm64: { entry: 'gemm4x4', bm: 64, bn: 64 },
};
export const isGemm = (v: MatmulVariant): v is GemmVariant => v in GEMM;

/** A kernel configuration: the variant, split-K count (gemm only) and k slice (gemm only: 8 or 16). */
export interface MatmulConfig { variant: MatmulVariant; splitK: number; bk: number }

/** A product's sizes and element strides: A (m, k) ↦ m·sam + k·sak, B (k, n) ↦ k·sbk + n·sbn, batch strides. */
export interface MatmulGeometry {
  M: number; N: number; K: number; batch: number;
  sam: number; sak: number; sbk: number; sbn: number;
  aBs: number; bBs: number;
}
type Geometry = MatmulGeometry;

/**
 * Epilogue and layout flags of one product: c = act(a·b + bias) + residual, with bias per column
 * (bias [N]) or, biasRows, per row (bias [M]).
 */
export interface MatmulFlags { act: MatmulActivation; hasBias: boolean; transA: boolean; transB: boolean; biasRows?: boolean; hasResidual?: boolean }

const P = defineParams('matmul.wgsl', 'Params', {
  M: 'u32', N: 'u32', K: 'u32', batch: 'u32', sam: 'u32', sak: 'u32', sbk: 'u32', sbn: 'u32',
  a_bs: 'u32', b_bs: 'u32', grid_m: 'u32', grid_n: 'u32', kc: 'u32', splits: 'u32',
});
const BASE = kernelModule('matmul', { libs: ['unary'] });
const GEMM_CODE = kernelModule('matmul', { libs: ['unary'], also: ['matmul_gemm'] });
const SG_CODE = kernelModule('matmul', { libs: ['unary', 'bcast8'], also: ['matmul_sg'] });
const PRO_CODE = kernelModule('matmul', { libs: ['unary', 'bcast8'], also: ['matmul_sg', 'matmul_pro'] });
/** The matmul kernel sources (the autotuner's cache version hashes them). */
export const MATMUL_SOURCES = [BASE, GEMM_CODE, SG_CODE] as const;

const WG = 64;

/**
 * The variant used when none is forced, as a name: settings.matmulVariant (LPO_MATMUL_VARIANT), else
 * 'blocked' on software adapters, else 'gemm128' (the family; per shape the autotuner or staticConfig
 * picks the member).
 */
export function defaultMatmulVariant(): MatmulVariant {
  return settings.matmulVariant ?? (gpu().isSoftware ? 'blocked' : 'gemm128');
}

/** The variant that actually runs for a requested one ('blocked' → 'strip' without subgroups). */
export function resolveMatmulVariant(v: MatmulVariant = defaultMatmulVariant(), g: Gpu = gpu()): MatmulVariant {
  return v === 'blocked' && !g.hasSubgroups8 ? 'strip' : v;
}

const gemmTiles = (v: GemmVariant, g: Geometry) => Math.ceil(g.M / GEMM[v].bm) * Math.ceil(g.N / GEMM[v].bn) * g.batch;

/** The split count actually used: slices of kc (a multiple of bk) covering K, batch·splits ≤ 65535. */
function splitPlan(K: number, splitK: number, bk: number, batch: number): { splits: number; kc: number } {
  let s = Math.max(1, Math.min(Math.floor(splitK), Math.ceil(K / bk), Math.floor(65535 / Math.max(1, batch))));
  if (s <= 1) return { splits: 1, kc: Math.max(K, 1) };
  const kc = Math.ceil(Math.ceil(K / s) / bk) * bk;
  s = Math.ceil(K / kc);
  return s <= 1 ? { splits: 1, kc: Math.max(K, 1) } : { splits: s, kc };
}

/** Split-K for a gemm variant by the heuristic: enough workgroups for ~2 per SM, ≥ 64 k per slice. */
function heuristicSplit(v: GemmVariant, g: Geometry): number {
  const tiles = gemmTiles(v, g);
  let s = 1;
  while (s < 16 && tiles * s * 2 <= 2 * settings.gpuSms && g.K / (s * 2) >= 64) s *= 2;
  return s;
}

/**
 * The static GPU choice (no tuning): 128×128 tiles when they fill the device (≥ ~0.75 per SM), else
 * 64×64 tiles, split along K while there are few of them and K is long.
 */
export function staticConfig(g: Geometry): MatmulConfig {
  const sms = settings.gpuSms;
  if (gemmTiles('gemm128', g) >= 0.75 * sms) return { variant: 'gemm128', splitK: 1, bk: 8 };
  if (gemmTiles('gemm128x64', g) >= 1.5 * sms) return { variant: 'gemm128x64', splitK: 1, bk: 8 };
  return { variant: 'gemm64', splitK: heuristicSplit('gemm64', g), bk: 8 };
}

/** The configuration of a product forced to variant `v` (split: the option, settings.matmulSplitK, or the heuristic). */
export function forcedConfig(v: MatmulVariant, g: Geometry, o: { splitK?: number; bk?: number } = {}): MatmulConfig {
  if (!isGemm(v)) return { variant: v, splitK: 1, bk: 8 };
  return { variant: v, splitK: o.splitK ?? settings.matmulSplitK ?? heuristicSplit(v, g), bk: o.bk ?? 8 };
}

/** 'gemm64/s4/k16' ↔ config. */
export function configId(c: MatmulConfig): string {
  return `${c.variant}${c.splitK > 1 ? `/s${c.splitK}` : ''}${isGemm(c.variant) && c.bk !== 8 ? `/k${c.bk}` : ''}`;
}
export function parseConfigId(id: string): MatmulConfig {
  const [v, ...rest] = id.split('/');
  if (!(MATMUL_VARIANTS as readonly string[]).includes(v)) throw new ArgumentError(`matmul config '${id}': unknown variant '${v}'`);
  const c: MatmulConfig = { variant: v as MatmulVariant, splitK: 1, bk: 8 };
  for (const r of rest) {
    if (/^s\d+$/.test(r)) c.splitK = Number(r.slice(1));
    else if (/^k\d+$/.test(r)) c.bk = Number(r.slice(1));
    else throw new ArgumentError(`matmul config '${id}': bad part '${r}'`);
  }
  return c;
}

/** The configuration id a product forced to variant `v` runs (heuristic split for gemm variants). */
export function forcedConfigId(v: MatmulVariant, g: MatmulGeometry, o: { splitK?: number; bk?: number } = {}): string {
  return configId(forcedConfig(resolveMatmulVariant(v), g, o));
}

/** Workgroup bytes of a gemm variant at k slice bk (double-buffered A and B slices). */
const gemmStorage = (v: GemmVariant, bk: number) => 2 * bk * (GEMM[v].bm + GEMM[v].bn) * 4;

/**
 * The configurations the autotuner times for a shape on this GPU: the barrier-free variants, and
 * each gemm tile with GBK 8 (and 16 where workgroup memory allows), with split-K 1, 2, 4, … while the
 * split grid stays ≤ ~4 workgroups per SM and slices keep ≥ 32 k.
 */
export function tuneCandidates(g: Geometry, opts: { subgroups: boolean; storage: number; sms?: number }): string[] {
  const sms = opts.sms ?? settings.gpuSms;
  const out: string[] = ['strip'];
  if (opts.subgroups) out.push('blocked');
  for (const v of Object.keys(GEMM) as GemmVariant[]) {
    for (const bk of [8, 16]) {
      if (gemmStorage(v, bk) > opts.storage) continue;
      const tiles = gemmTiles(v, g);
      for (let s = 1; s <= 16; s *= 2) {
        if (s > 1 && (tiles * s > 4 * sms || g.K / s < 32)) break;
        const { splits } = splitPlan(g.K, s, bk, g.batch);
        if (s > 1 && splits < s) break;
        out.push(configId({ variant: v, splitK: s, bk }));
      }
    }
  }
  return out;
}

/** Geometry of a plain product: a [M, K] (or [K, M] with transA), b [K, N] (or [N, K]), batch. */
export function matmulGeometry(M: number, K: number, N: number, o: { transA?: boolean; transB?: boolean; batch?: number } = {}): MatmulGeometry {
  const batch = o.batch ?? 1;
  return {
    M, N, K, batch,
    sam: o.transA ? 1 : K, sak: o.transA ? M : 1,
    sbk: o.transB ? 1 : N, sbn: o.transB ? K : 1,
    aBs: batch > 1 ? M * K : 0, bBs: batch > 1 ? K * N : 0,
  };
}

export interface PlanBuffers { a: GPUBuffer; b: GPUBuffer; bias: GPUBuffer; c: GPUBuffer; scratch?: GPUBuffer; residual?: GPUBuffer }

/** Elements of split-K scratch a configuration needs (0: none). */
export function scratchElems(cfg: MatmulConfig, g: Geometry): number {
  if (!isGemm(cfg.variant)) return 0;
  const { splits } = splitPlan(g.K, cfg.splitK, cfg.bk, g.batch);
  return splits > 1 ? splits * g.batch * g.M * g.N : 0;
}

/**
 * The 'blocked' entry for a geometry: A (and B) read as vec4 when their k runs are contiguous and 4-aligned
 * (lavapipe scalarises lane-varying loads, so one 16-byte load instead of four is most of the gain: same-process
 * A/B 0.73–0.86× the time at 512³–1024³ with A as vec4, 0.38–0.85× with both on transposed-B products).
 */
function blockedEntry(g: Geometry): 'blocked' | 'blocked_va' | 'blocked_vab' {
  const a4 = g.sak === 1 && g.sam % 4 === 0 && g.aBs % 4 === 0 && g.K % 4 === 0;
  if (!a4) return 'blocked';
  return g.sbk === 1 && g.sbn % 4 === 0 && g.bBs % 4 === 0 ? 'blocked_vab' : 'blocked_va';
}

/** The dispatches (in order) of one product under a configuration. */
export function planMatmul(cfg: MatmulConfig, g: Geometry, f: MatmulFlags, bufs: PlanBuffers): Dispatch[] {
  const constants: Record<string, number> = {
    ACT: opcode('UNARY', f.act === 'none' ? 'identity' : f.act), HAS_BIAS: f.hasBias ? 1 : 0, BIAS_ROWS: f.biasRows ? 1 : 0, HAS_RES: f.hasResidual ? 1 : 0,
  };
  // Every entry point binds the residual (the bias buffer stands in when there is none).
  const res = bufs.residual ?? bufs.bias;
  const buffers = [bufs.a, bufs.b, bufs.bias, bufs.c, res];
  const base = { M: g.M, N: g.N, K: g.K, batch: g.batch, sam: g.sam, sak: g.sak, sbk: g.sbk, sbn: g.sbn, a_bs: g.aBs, b_bs: g.bBs };
  const v = cfg.variant;
  const name = `matmul.${v}`;
  switch (v) {
    case 'naive':
      return [{
        kernel: { name, code: BASE, entry: 'naive', constants: { ...constants, WG } },
        buffers, params: P.of({ ...base, grid_m: 0, grid_n: 0, kc: g.K, splits: 1 }), workgroups: Math.ceil((g.M * g.N * g.batch) / WG),
      }];
    case 'gemm128': case 'gemm128x64': case 'gemm64': {
      const { entry, bm, bn } = GEMM[v];
      const { splits, kc } = splitPlan(g.K, cfg.splitK, cfg.bk, g.batch);
      const split = splits > 1;
      if (split && !bufs.scratch) throw new LimitError('matmul: split-K plan without scratch');
      const params = P.of({ ...base, grid_m: 0, grid_n: 0, kc, splits });
      const gemm: Dispatch = {
        kernel: {
          name, code: GEMM_CODE, entry,
          constants: { ...constants, BM: bm, BN: bn, GBK: cfg.bk, SPLIT: split ? 1 : 0, TRANS_A: f.transA ? 1 : 0, TRANS_B: f.transB ? 1 : 0 },
        },
        buffers: split ? [bufs.a, bufs.b, bufs.bias, bufs.scratch!, res] : buffers,
        params,
        workgroups: [Math.ceil(g.N / bn), Math.ceil(g.M / bm), g.batch * splits],
      };
      if (!split) return [gemm];
      const reduce: Dispatch = {
        kernel: { name: 'matmul.splitk', code: BASE, entry: 'splitk_reduce', constants: { ...constants, WG: 256 } },
        buffers: [bufs.scratch!, bufs.scratch!, bufs.bias, bufs.c, res],
        params,
        workgroups: Math.ceil((g.M * g.N * g.batch) / 256),
      };
      return [gemm, reduce];
    }
    default: {
      // blocked: two columns per lane once N spans more than one tile (kernels/matmul_sg.wgsl, COLS).
      // blocked_vab: 16 rows per tile once M spans several tiles of 8 (kernels/matmul_sg.wgsl, ROWS).
      const cols = v === 'blocked' && g.N > WG ? 2 : 1;
      const entry = v === 'blocked' ? blockedEntry(g) : v;
      const rows = entry === 'blocked_vab' && g.M >= 32 ? 16 : 8;
      const gridN = Math.ceil(g.N / (WG * cols));
      const gridM = Math.ceil(g.M / rows);
      const tile = v === 'blocked' ? { COLS: cols, ...(entry === 'blocked_vab' ? { ROWS: rows } : {}) } : {};
      return [{
        kernel: { name: entry === v ? name : `matmul.${entry}`, code: v === 'blocked' ? SG_CODE : BASE, entry, constants: { ...constants, WG, ...tile } },
        buffers, params: P.of({ ...base, grid_m: gridM, grid_n: gridN, kc: g.K, splits: 1 }), workgroups: gridN * gridM * g.batch,
      }];
    }
  }
}

const dummies = new WeakMap<Gpu, GPUBuffer>();
/** A bias stand-in for products without one (never read: HAS_BIAS is false). */
function dummyBuffer(G: Gpu): GPUBuffer {
  let d = dummies.get(G);
  if (!d) dummies.set(G, (d = G.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE, label: 'matmul.nobias' })));
  return d;
}

/** Records one product on the stream: c = act(op(a)·op(b) + bias) under `cfg` (blocked resolved here). */
export function launchMatmul(cfg: MatmulConfig, g: Geometry, f: MatmulFlags, bufs: { a: GPUBuffer; b: GPUBuffer; bias?: GPUBuffer; c: GPUBuffer; residual?: GPUBuffer }): void {
  const G = gpu();
  const r: MatmulConfig = { ...cfg, variant: resolveMatmulVariant(cfg.variant, G) };
  if (r.variant === 'blocked') {
    const pk = packPlan(g);
    if (pk) return launchPacked(r, g, f, pk, bufs);
  }
  const se = scratchElems(r, g);
  const scratch = se > 0 ? G.pool.acquire(se * 4, 'matmul.splitk') : undefined;
  for (const d of planMatmul(r, g, f, { a: bufs.a, b: bufs.b, bias: bufs.bias ?? dummyBuffer(G), c: bufs.c, scratch, residual: bufs.residual })) G.dispatch(d);
  // Stream order keeps the reduce's reads before any later writer of the recycled buffer.
  if (scratch) G.pool.release(scratch);
}

/** Products below this many multiply-adds never pack: the copy launches would cost more than they save. */
const PACK_MIN_MACS = 2 ** 21;
/** An operand is packed only when the product does at least this many multiply-adds per element copied. */
const PACK_REUSE = 128;
/** Rows per pack_rows workgroup (PACK_ROWS in kernels/matmul.wgsl). */
const PACK_ROWS = 8;
/** Row stride of a packed copy: K, padded by 4 when rows would start a multiple of 4 KiB apart (L1 set aliasing). */
const packStride = (K: number) => (K % 1024 === 0 ? K + 4 : K);

/**
 * Which operands of a 'blocked' product run from k-contiguous copies (null: none). blocked reads an operand
 * that is not contiguous in k (Aᵀ, or B as [K, N]) with scalar loads, which lavapipe issues lane by lane;
 * on copies, blocked_vab reads both as vec4. A copy is one pack_rows launch over rows·K elements, so it
 * pays off once each copied element feeds PACK_REUSE multiply-adds (the other side's length).
 */
export function packPlan(g: Geometry): { a: boolean; b: boolean } | null {
  if (!settings.pack || g.K % 4 !== 0 || blockedEntry(g) === 'blocked_vab') return null;
  const a = !(g.sak === 1 && g.sam % 4 === 0 && g.aBs % 4 === 0);
  const b = !(g.sbk === 1 && g.sbn % 4 === 0 && g.bBs % 4 === 0);
  const macs = g.M * g.N * g.K * g.batch;
  const copied = (a ? g.M * g.K * (g.aBs ? g.batch : 1) : 0) + (b ? g.N * g.K * (g.bBs ? g.batch : 1) : 0);
  // pack_rows' grid: [K / (4·WG), rows / PACK_ROWS, batch] for each packed side.
  const fitsGrid = Math.max(g.K / (4 * WG), a ? g.M / PACK_ROWS : 0, b ? g.N / PACK_ROWS : 0, g.batch) <= 65535;
  const ds = packStride(g.K);
  const fitsBinding = Math.max(a ? g.M * ds * (g.aBs ? g.batch : 1) : 0, b ? g.N * ds * (g.bBs ? g.batch : 1) : 0) * 4 <= gpu().summary.maxStorageBufferBindingSize;
  return fitsGrid && fitsBinding && macs >= PACK_MIN_MACS && macs >= PACK_REUSE * copied ? { a, b } : null;
}

/** Records pack_rows: rows × K of `src` (row stride, k stride, batch stride) into `dst` at row stride `ds`. */
function launchPack(src: GPUBuffer, dst: GPUBuffer, q: { rows: number; K: number; ds: number; rs: number; ks: number; batch: number; bs: number }): void {
  const G = gpu();
  const none = dummyBuffer(G);
  G.dispatch({
    kernel: { name: 'matmul.pack_rows', code: BASE, entry: 'pack_rows', constants: { WG } },
    buffers: [src, src, none, dst, none],
    params: P.of({ M: q.rows, N: q.ds, K: q.K, batch: q.batch, sam: q.rs, sak: q.ks, sbk: 0, sbn: 0, a_bs: q.bs, b_bs: 0, grid_m: 0, grid_n: 0, kc: 0, splits: 1 }),
    workgroups: [Math.ceil(q.K / (4 * WG)), Math.ceil(q.rows / PACK_ROWS), q.batch],
  });
}

/** A 'blocked' product on packed copies of the operands `pk` names (blocked_vab then reads both as vec4). */
function launchPacked(cfg: MatmulConfig, g: Geometry, f: MatmulFlags, pk: { a: boolean; b: boolean }, bufs: { a: GPUBuffer; b: GPUBuffer; bias?: GPUBuffer; c: GPUBuffer; residual?: GPUBuffer }): void {
  const G = gpu();
  const ds = packStride(g.K);
  const aCount = g.aBs ? g.batch : 1;
  const bCount = g.bBs ? g.batch : 1;
  const pa = pk.a ? G.pool.acquire(aCount * g.M * ds * 4, 'matmul.packA') : undefined;
  const pb = pk.b ? G.pool.acquire(bCount * g.N * ds * 4, 'matmul.packB') : undefined;
  if (pa) launchPack(bufs.a, pa, { rows: g.M, K: g.K, ds, rs: g.sam, ks: g.sak, batch: aCount, bs: g.aBs });
  if (pb) launchPack(bufs.b, pb, { rows: g.N, K: g.K, ds, rs: g.sbn, ks: g.sbk, batch: bCount, bs: g.bBs });
  const packed: Geometry = {
    ...g,
    ...(pa ? { sam: ds, sak: 1, aBs: g.aBs ? g.M * ds : 0 } : {}),
    ...(pb ? { sbn: ds, sbk: 1, bBs: g.bBs ? g.N * ds : 0 } : {}),
  };
  for (const d of planMatmul(cfg, packed, f, { a: pa ?? bufs.a, b: pb ?? bufs.b, bias: bufs.bias ?? dummyBuffer(G), c: bufs.c, residual: bufs.residual })) G.dispatch(d);
  // Stream order keeps the product's reads before any later writer of the recycled buffers.
  if (pa) G.pool.release(pa);
  if (pb) G.pool.release(pb);
}

/** Storage buffers blocked_pro binds (kernels/matmul_pro.wgsl): a, w0, bias, c0, residual, w1, w2, c1, c2, γ, β. */
const PRO_BINDINGS = 11;

/**
 * Whether blocked_pro can run here: the 'blocked' variant is what products use (software adapters with
 * subgroups of ≥ 8; elsewhere the gemm family is faster and the caller runs the unfused ops) and the device
 * allows its 11 storage bindings.
 */
export function canRunMatmulPrologue(G: Gpu = gpu()): boolean {
  return resolveMatmulVariant(defaultMatmulVariant(), G) === 'blocked' && G.device.limits.maxStorageBuffersPerShaderStage >= PRO_BINDINGS;
}

/**
 * Whether a LayerNorm of A's M rows runs as blocked_pro's prologue. Every subgroup of every column tile (and
 * weight) normalises its 8 rows again, so the repeated work grows with M while the launch it saves is a fixed
 * cost: same-process A/B on lavapipe (scratch/proab.ts, K = 64, N = 64..512, 1 or 3 weights) had the fused
 * launch at 0.66–0.79× the time of layerNorm + product at M = 16, and 1.1–1.8× at M = 128.
 */
export const normPrologueFits = (M: number): boolean => M <= 64;

/** One blocked_pro launch: A [M, K] (K % 4 == 0), `w.length` weights [N, K] (with geglu one, [2N, K]). */
export interface PrologueProduct {
  M: number; N: number; K: number;
  norm?: { gamma: GPUBuffer; beta: GPUBuffer; eps: number };
  geglu?: boolean;
  a: GPUBuffer; w: readonly GPUBuffer[]; c: readonly GPUBuffer[];
  /** With one weight only. */
  bias?: GPUBuffer; residual?: GPUBuffer;
}

const outDummies = new WeakMap<Gpu, GPUBuffer>();
/**
 * Writable stand-ins for the outputs c1, c2 a launch does not have (never written: z < WEIGHTS), as two
 * 256-byte halves of one buffer (Dawn rejects two writable bindings of overlapping ranges).
 */
function outDummies2(G: Gpu): [BufferBinding, BufferBinding] {
  let d = outDummies.get(G);
  if (!d) outDummies.set(G, (d = G.device.createBuffer({ size: 512, usage: GPUBufferUsage.STORAGE, label: 'matmul.noout' })));
  return [{ buffer: d, offset: 0, size: 256 }, { buffer: d, offset: 256, size: 256 }];
}

/** Records blocked_pro (kernels/matmul_pro.wgsl): c_z = prologue(A)·W_zᵀ (+ bias) (+ residual) for z < w.length. */
export function launchMatmulPrologue(q: PrologueProduct): void {
  const G = gpu();
  const W = q.w.length;
  // GEGLU: two columns per lane, value j and gate N + j, in tiles of WG output columns.
  const cols = q.N > WG || q.geglu ? 2 : 1;
  const gridN = Math.ceil(q.N / (q.geglu ? WG : WG * cols));
  const gridM = Math.ceil(q.M / 8);
  const none = dummyBuffer(G);
  const out = outDummies2(G);
  G.dispatch({
    kernel: {
      name: `matmul.blocked_pro${q.norm ? '.ln' : ''}${q.geglu ? '.geglu' : ''}${W > 1 ? `.w${W}` : ''}`, code: PRO_CODE, entry: 'blocked_pro',
      constants: {
        WG, COLS: cols, ACT: opcode('UNARY', 'identity'), HAS_BIAS: q.bias ? 1 : 0, BIAS_ROWS: 0, HAS_RES: q.residual ? 1 : 0,
        NORM: q.norm ? 1 : 0, GEGLU: q.geglu ? 1 : 0, WEIGHTS: W, EPS: q.norm?.eps ?? 1e-5,
      },
    },
    buffers: [q.a, q.w[0], q.bias ?? none, q.c[0], q.residual ?? none, q.w[1] ?? none, q.w[2] ?? none, q.c[1] ?? out[0], q.c[2] ?? out[1], q.norm?.gamma ?? none, q.norm?.beta ?? none],
    params: P.of({ M: q.M, N: q.N, K: q.K, batch: W, sam: q.K, sak: 1, sbk: 1, sbn: q.K, a_bs: 0, b_bs: 0, grid_m: gridM, grid_n: gridN, kc: q.K, splits: 1 }),
    workgroups: gridN * gridM * W,
  });
}
