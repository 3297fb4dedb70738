// Matmul and linear: C = act(op(A)·op(B) + bias) with batch broadcasting, transposes as strides,
// a fused bias/activation epilogue, and backward rules on the tape.
//
// Variants (kernels/matmul.wgsl): 'naive' (baseline), 'blocked' (no barriers, subgroupBroadcast of A
// rows; falls back to 'strip' without subgroups), 'strip' (no barriers, no subgroups) and the SGEMM family 'gemm128' (128×128 tiles, 8×8 per invocation),
// 'gemm128x64' (8×4) and 'gemm64' (64×64, 4×4): 256 invocations, double-buffered k slices, optional
// split-K (partial sums in a scratch buffer, then `splitk_reduce` with the epilogue).
// A kernel configuration is a variant plus a split count and a k slice, written as an id:
// 'gemm64/s4' (split K in 4), 'gemm128/k16' (GBK = 16), 'strip'.
//
// Choice: `opts.variant` (tests, bench) > LPO_MATMUL_VARIANT > 'blocked' on software adapters > on
// GPUs the autotuned winner for the shape's bucket (src/gpu/autotune.ts; see `matmulAutotuner`) >
// a static heuristic (staticConfig). LPO_AUTOTUNE=0 turns tuning off; LPO_MATMUL_SPLITK forces the
// split count of forced gemm variants.
import family from '../../../kernels/matmul.wgsl';
import { withCommon } from '../../gpu/wgsl.js';
import { ShapeError, ArgumentError, DTypeError } from '../../errors.js';
import { LimitError } from '../../gpu/errors.js';
import { foldWorkgroups, gpu, type Dispatch, type Gpu } from '../../gpu/runtime.js';
import { Autotuner, buildPipeline, hashString, timeDispatches, tuneCacheFile, type TimedDispatch } from '../../gpu/autotune.js';
import { isGradEnabled, record } from '../../autograd/tape.js';
import { Tensor, numel } from '../tensor.js';
import { broadcastShapes, expandTo, unary, type UnaryOp } from './elementwise.js';
import { sumToShape } from './reduce.js';
import { reshape } from './layout.js';

const source = withCommon(family);

export type GemmVariant = 'gemm128' | 'gemm128x64' | 'gemm64';
export type MatmulVariant = 'naive' | 'blocked' | 'strip' | GemmVariant;
export type MatmulActivation = 'none' | 'relu' | 'gelu' | 'geluTanh' | 'silu';
const ACT: Record<MatmulActivation, number> = { none: 0, relu: 1, gelu: 2, geluTanh: 3, silu: 4 };
export const MATMUL_VARIANTS: readonly MatmulVariant[] = ['naive', 'blocked', 'strip', 'gemm128', 'gemm128x64', 'gemm64'];
const VARIANTS = MATMUL_VARIANTS;

/** The SGEMM family: entry point and tile. */
const GEMM: Record<GemmVariant, { entry: string; bm: number; bn: number }> = {
  gemm128: { entry: 'gemm8x8', bm: 128, bn: 128 },
  gemm128x64: { entry: 'gemm8x4', bm: 128, bn: 64 },
  gemm64: { entry: 'gemm4x4', bm: 64, bn: 64 },
};
const isGemm = (v: MatmulVariant): v is GemmVariant => v in GEMM;

/** A kernel configuration: the variant, split-K count (gemm only) and k slice (gemm only: 8 or 16). */
export interface MatmulConfig { variant: MatmulVariant; splitK: number; bk: number }

export interface MatmulOptions {
  /** a is [..., K, M] and used transposed. */
  transA?: boolean;
  /** b is [..., N, K] and used transposed (nn.Linear's weight layout). */
  transB?: boolean;
  /** [N], added before the activation. */
  bias?: Tensor;
  activation?: MatmulActivation;
  /** Forces a kernel variant (tests, bench). */
  variant?: MatmulVariant;
  /** With a forced gemm variant: split K into this many slices (1: none). Default: the heuristic. */
  splitK?: number;
  /** With a forced gemm variant: the k slice per barrier (8 or 16). */
  bk?: number;
}

const [COMMON, SUBGROUP_SECTION] = source.split('// ---- subgroups ----');
const SG_SOURCE = `${COMMON}\n${SUBGROUP_SECTION}`;

/** The variant forced by LPO_MATMUL_VARIANT, if any. */
function envVariant(): MatmulVariant | undefined {
  const env = process.env.LPO_MATMUL_VARIANT;
  if (!env) return undefined;
  if (!(VARIANTS as readonly string[]).includes(env)) throw new ArgumentError(`LPO_MATMUL_VARIANT=${env}: expected one of ${VARIANTS.join('|')}`);
  return env as MatmulVariant;
}

/**
 * The variant used when none is forced, as a name: LPO_MATMUL_VARIANT, else 'blocked' on software
 * adapters, else 'gemm128' (the family; per shape the autotuner or staticConfig picks the member).
 */
export function defaultMatmulVariant(): MatmulVariant {
  return envVariant() ?? (gpu().isSoftware ? 'blocked' : 'gemm128');
}

/** Whether the subgroupBroadcast kernel can run here (subgroups with ≥ 8 lanes). */
export function hasBlockedKernel(g: Gpu = gpu()): boolean {
  return g.acquired.hasSubgroups && g.summary.subgroupMinSize >= 8;
}

/** The variant that actually runs for a requested one ('blocked' → 'strip' without subgroups). */
export function resolveMatmulVariant(v: MatmulVariant = defaultMatmulVariant()): MatmulVariant {
  return v === 'blocked' && !hasBlockedKernel() ? 'strip' : v;
}

const dummies = new WeakMap<Gpu, GPUBuffer>();
function dummyBuffer(): GPUBuffer {
  const g = gpu();
  let d = dummies.get(g);
  if (!d) {
    d = g.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE, label: 'matmul.nobias' });
    dummies.set(g, d);
  }
  return d;
}

export interface MatmulGeometry {
  M: number; N: number; K: number; batch: number;
  sam: number; sak: number; sbk: number; sbn: number;
  aBs: number; bBs: number;
}
type Geometry = MatmulGeometry;

const WG = 64;
/** Streaming multiprocessors to fill (H100/H200: 132); only shapes the static heuristic. */
const SMS = Number(process.env.LPO_GPU_SMS ?? 132);

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
  while (s < 16 && tiles * s * 2 <= 2 * SMS && g.K / (s * 2) >= 64) s *= 2;
  return s;
}

/**
 * The static GPU choice (no tuning): 128×128 tiles when they fill the device (≥ ~0.75 per SM), else
 * 64×64 tiles, split along K while there are few of them and K is long.
 */
export function staticConfig(g: Geometry): MatmulConfig {
  if (gemmTiles('gemm128', g) >= 0.75 * SMS) return { variant: 'gemm128', splitK: 1, bk: 8 };
  if (gemmTiles('gemm128x64', g) >= 1.5 * SMS) return { variant: 'gemm128x64', splitK: 1, bk: 8 };
  return { variant: 'gemm64', splitK: heuristicSplit('gemm64', g), bk: 8 };
}

/** 'gemm64/s4/k16' ↔ config. */
export function configId(c: MatmulConfig): string {
  return `${c.variant}${c.splitK > 1 ? `/s${c.splitK}` : ''}${isGemm(c.variant) && c.bk !== 8 ? `/k${c.bk}` : ''}`;
}
export function parseConfigId(id: string): MatmulConfig {
  const [v, ...rest] = id.split('/');
  if (!(VARIANTS as readonly string[]).includes(v)) throw new ArgumentError(`matmul config '${id}': unknown variant '${v}'`);
  const c: MatmulConfig = { variant: v as MatmulVariant, splitK: 1, bk: 8 };
  for (const r of rest) {
    if (/^s\d+$/.test(r)) c.splitK = Number(r.slice(1));
    else if (/^k\d+$/.test(r)) c.bk = Number(r.slice(1));
    else throw new ShapeError(`matmul config '${id}': bad part '${r}'`);
  }
  return c;
}

function maxWorkgroupStorage(): number {
  return gpu().device.limits.maxComputeWorkgroupStorageSize;
}
/** Workgroup bytes of a gemm variant at k slice bk (double-buffered A and B slices). */
const gemmStorage = (v: GemmVariant, bk: number) => 2 * bk * (GEMM[v].bm + GEMM[v].bn) * 4;

/**
 * The configurations the autotuner times for a shape on this GPU: the barrier-free variants, and
 * each gemm tile with GBK 8 (and 16 where workgroup memory allows), with split-K 1, 2, 4, … while the
 * split grid stays ≤ ~4 workgroups per SM and slices keep ≥ 32 k.
 */
export function tuneCandidates(g: Geometry, opts: { subgroups: boolean; storage: number; sms?: number }): string[] {
  const sms = opts.sms ?? SMS;
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

// ------------------------------------------------------------------------------------------ plan
interface PlanBuffers { a: GPUBuffer; b: GPUBuffer; bias: GPUBuffer; c: GPUBuffer; scratch?: GPUBuffer }
interface Flags { act: MatmulActivation; hasBias: boolean; transA: boolean; transB: boolean }

/** Elements of split-K scratch a configuration needs (0: none). */
function scratchElems(cfg: MatmulConfig, g: Geometry): number {
  if (!isGemm(cfg.variant)) return 0;
  const { splits } = splitPlan(g.K, cfg.splitK, cfg.bk, g.batch);
  return splits > 1 ? splits * g.batch * g.M * g.N : 0;
}

/** The dispatches (in order) of one product under a configuration. */
function planMatmul(cfg: MatmulConfig, g: Geometry, f: Flags, bufs: PlanBuffers): Dispatch[] {
  const constants: Record<string, number> = { ACT: ACT[f.act], HAS_BIAS: f.hasBias ? 1 : 0 };
  const buffers = [bufs.a, bufs.b, bufs.bias, bufs.c];
  const base = [g.M, g.N, g.K, g.batch, g.sam, g.sak, g.sbk, g.sbn, g.aBs, g.bBs];
  const v = cfg.variant;
  const name = `matmul.${v}`;
  switch (v) {
    case 'naive':
      return [{
        kernel: { name, code: COMMON, entry: 'naive', constants: { ...constants, WG } },
        buffers, params: [...base, 0, 0, g.K, 1], workgroups: Math.ceil((g.M * g.N * g.batch) / WG),
      }];
    case 'gemm128': case 'gemm128x64': case 'gemm64': {
      const { entry, bm, bn } = GEMM[v];
      const { splits, kc } = splitPlan(g.K, cfg.splitK, cfg.bk, g.batch);
      const split = splits > 1;
      if (split && !bufs.scratch) throw new LimitError('matmul: split-K plan without scratch');
      const gemm: Dispatch = {
        kernel: {
          name, code: COMMON, entry,
          constants: { ...constants, BM: bm, BN: bn, GBK: cfg.bk, SPLIT: split ? 1 : 0, TRANS_A: f.transA ? 1 : 0, TRANS_B: f.transB ? 1 : 0 },
        },
        buffers: split ? [bufs.a, bufs.b, bufs.bias, bufs.scratch!] : buffers,
        params: [...base, 0, 0, kc, splits],
        workgroups: [Math.ceil(g.N / bn), Math.ceil(g.M / bm), g.batch * splits],
      };
      if (!split) return [gemm];
      const reduce: Dispatch = {
        kernel: { name: 'matmul.splitk', code: COMMON, entry: 'splitk_reduce', constants: { ...constants, WG: 256 } },
        buffers: [bufs.scratch!, bufs.scratch!, bufs.bias, bufs.c],
        params: [...base, 0, 0, kc, splits],
        workgroups: Math.ceil((g.M * g.N * g.batch) / 256),
      };
      return [gemm, reduce];
    }
    default: {
      const gridN = Math.ceil(g.N / WG);
      const gridM = Math.ceil(g.M / 8);
      const sg = v === 'blocked';
      return [{
        kernel: { name, code: sg ? SG_SOURCE : COMMON, entry: v, constants: { ...constants, WG }, enables: sg ? ['subgroups'] : undefined },
        buffers, params: [...base, gridM, gridN, g.K, 1], workgroups: gridN * gridM * g.batch,
      }];
    }
  }
}

function launch(cfg: MatmulConfig, a: Tensor, b: Tensor, bias: Tensor | undefined, c: Tensor, g: Geometry, f: Flags): void {
  const r: MatmulConfig = { ...cfg, variant: resolveMatmulVariant(cfg.variant) };
  const se = scratchElems(r, g);
  const pool = gpu().pool;
  const scratch = se > 0 ? pool.acquire(se * 4, 'matmul.splitk') : undefined;
  for (const d of planMatmul(r, g, f, { a: a.buffer, b: b.buffer, bias: bias ? bias.buffer : dummyBuffer(), c: c.buffer, scratch })) gpu().dispatch(d);
  // Stream order keeps the reduce's reads before any later writer of the recycled buffer.
  if (scratch) pool.release(scratch);
}

// -------------------------------------------------------------------------------------- autotune
const tuners = new WeakMap<Gpu, Autotuner>();

/** The matmul autotuner of the current GPU (records per shape bucket; file cache per adapter). */
export function matmulAutotuner(): Autotuner {
  const g = gpu();
  let t = tuners.get(g);
  if (!t) {
    const s = g.summary;
    const adapter = `${s.vendor}-${s.device || s.description}`;
    const file = process.env.LPO_AUTOTUNE_CACHE === '0' ? null : tuneCacheFile('matmul', adapter);
    t = new Autotuner({ file, version: `${hashString(source)}-${s.description}` });
    tuners.set(g, t);
  }
  return t;
}

/** Whether this process tunes matmul: a GPU (never software) with timestamps, LPO_AUTOTUNE ≠ 0. */
export function matmulAutotuneEnabled(g: Gpu = gpu()): boolean {
  return !g.isSoftware && g.acquired.hasTimestamps && process.env.LPO_AUTOTUNE !== '0';
}

const p2 = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));
/** Shape bucket: M, N, K, batch rounded up to powers of two, plus the transposes. */
export function matmulBucket(g: Geometry, transA: boolean, transB: boolean): string {
  return `${p2(g.M)}x${p2(g.N)}x${p2(g.K)}b${p2(g.batch)}${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
}

/** Products below this many FLOPs are not tuned (the static choice is fine; tuning costs more). */
const MIN_TUNE_FLOPS = 2 ** 22;
/** Added per extra dispatch when comparing candidates (host cost the timestamps do not see), ns. */
const DISPATCH_PENALTY_NS = Number(process.env.LPO_AUTOTUNE_DISPATCH_NS ?? 3000);

const tunePipelines = new WeakMap<Gpu, Map<string, Promise<GPUComputePipeline>>>();

/**
 * GPU time (ns) of one product under configuration `id` on private zero-filled buffers (the
 * autotuner's measure; exported for tests and tools, it runs on any adapter with timestamps).
 */
export async function measureConfig(id: string, g: Geometry, f: Flags): Promise<number> {
  const G = gpu();
  const dev = G.device;
  const cfg = parseConfigId(id);
  if (cfg.variant === 'blocked' && !hasBlockedKernel(G)) return Infinity;
  const aElems = (g.batch - 1) * g.aBs + (g.M - 1) * g.sam + (g.K - 1) * g.sak + 1;
  const bElems = (g.batch - 1) * g.bBs + (g.K - 1) * g.sbk + (g.N - 1) * g.sbn + 1;
  const make = (elems: number, label: string) => dev.createBuffer({ size: Math.max(256, Math.ceil(elems / 64) * 256), usage: GPUBufferUsage.STORAGE, label });
  const se = scratchElems(cfg, g);
  const bufs: PlanBuffers = { a: make(aElems, 'tune.a'), b: make(bElems, 'tune.b'), bias: make(g.N, 'tune.bias'), c: make(g.batch * g.M * g.N, 'tune.c') };
  if (se) bufs.scratch = make(se, 'tune.scratch');
  try {
    let pipes = tunePipelines.get(G);
    if (!pipes) tunePipelines.set(G, (pipes = new Map()));
    const timed: TimedDispatch[] = [];
    for (const d of planMatmul(cfg, g, f, bufs)) {
      const k = d.kernel;
      const code = (k.enables ?? []).map((e) => `enable ${e};\n`).join('') + k.code;
      const key = `${k.entry}|${JSON.stringify(k.constants)}|${k.enables ?? ''}`;
      let p = pipes.get(key);
      if (!p) pipes.set(key, (p = buildPipeline(dev, code, k.entry ?? 'main', k.constants ?? {}, `${k.name}(tune)`)));
      const wgs = typeof d.workgroups === 'number' ? foldWorkgroups(d.workgroups) : d.workgroups;
      timed.push({ pipeline: await p, buffers: d.buffers as GPUBuffer[], params: d.params as number[], workgroups: [wgs[0], wgs[1] ?? 1, wgs[2] ?? 1] });
    }
    const ns = await timeDispatches(dev, timed, 5, 2);
    return ns + DISPATCH_PENALTY_NS * (timed.length - 1);
  } finally {
    for (const b of Object.values(bufs)) (b as GPUBuffer | undefined)?.destroy();
  }
}

/**
 * Starts tuning the bucket of this product (if new) and resolves when it is tuned. Ops do this
 * themselves in the background on GPUs; callers that want tuned choices from the first product
 * (bench) await this or `matmulAutotuner().idle()`.
 */
export function autotuneMatmul(g: Geometry, transA = false, transB = false): Promise<unknown> {
  const G = gpu();
  if (!matmulAutotuneEnabled(G)) return Promise.resolve(undefined);
  const f: Flags = { act: 'none', hasBias: false, transA, transB };
  const geo = { ...g };
  return matmulAutotuner().request(
    matmulBucket(g, transA, transB),
    () => tuneCandidates(geo, { subgroups: hasBlockedKernel(G), storage: maxWorkgroupStorage() }),
    (id) => measureConfig(id, geo, f),
  );
}

/** The configuration for a product when none is forced by the caller. */
function chooseConfig(g: Geometry, transA: boolean, transB: boolean): MatmulConfig {
  const forced = envVariant();
  if (forced) return forcedConfig(forced, g, {});
  const G = gpu();
  if (G.isSoftware) return { variant: 'blocked', splitK: 1, bk: 8 };
  if (matmulAutotuneEnabled(G)) {
    const tuner = matmulAutotuner();
    const id = tuner.get(matmulBucket(g, transA, transB));
    if (id) return parseConfigId(id);
    // Background tuning on first sight of a bucket; not under vitest (tests time nothing and stay on
    // the static choice) unless LPO_AUTOTUNE=1. Explicit autotuneMatmul() calls (bench) always tune.
    const background = !process.env.VITEST || process.env.LPO_AUTOTUNE === '1';
    if (background && 2 * g.M * g.N * g.K * g.batch >= MIN_TUNE_FLOPS) void autotuneMatmul(g, transA, transB);
  }
  return staticConfig(g);
}

function forcedConfig(v: MatmulVariant, g: Geometry, o: { splitK?: number; bk?: number }): MatmulConfig {
  if (!isGemm(v)) return { variant: v, splitK: 1, bk: 8 };
  const env = process.env.LPO_MATMUL_SPLITK;
  const splitK = o.splitK ?? (env ? Number(env) : heuristicSplit(v, g));
  return { variant: v, splitK, bk: o.bk ?? 8 };
}

/** The configuration id a product forced to variant `v` runs (heuristic split for gemm variants). */
export function forcedConfigId(v: MatmulVariant, g: MatmulGeometry, o: { splitK?: number; bk?: number } = {}): string {
  return configId(forcedConfig(resolveMatmulVariant(v), g, o));
}

/** Geometry of a product (for autotuneMatmul): a [M, K] (or [K, M] with transA), b [K, N] (or [N, K]), batch. */
export function matmulGeometry(M: number, K: number, N: number, o: { transA?: boolean; transB?: boolean; batch?: number } = {}): MatmulGeometry {
  const batch = o.batch ?? 1;
  return {
    M, N, K, batch,
    sam: o.transA ? 1 : K, sak: o.transA ? M : 1,
    sbk: o.transB ? 1 : N, sbn: o.transB ? K : 1,
    aBs: batch > 1 ? M * K : 0, bBs: batch > 1 ? K * N : 0,
  };
}

/** The configuration an unforced product of this geometry would use right now (bench, reports). */
export function currentMatmulConfig(g: MatmulGeometry, transA = false, transB = false): string {
  return configId(chooseConfig(g, transA, transB));
}

function dims(t: Tensor, trans: boolean): [number, number] {
  const r = t.shape[t.rank - 2];
  const c = t.shape[t.rank - 1];
  return trans ? [c, r] : [r, c];
}

/**
 * act(op(a)·op(b) + bias). a: [..., M, K] ([..., K, M] with transA); b: [..., K, N] ([..., N, K] with
 * transB); leading batch dims broadcast (NumPy rules). Returns [...batch, M, N].
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const act = opts.activation ?? 'none';
  const bias = opts.bias;
  const desc = () => `a [${a.shape}]${transA ? 'ᵀ' : ''} · b [${b.shape}]${transB ? 'ᵀ' : ''}${bias ? ` + bias [${bias.shape}]` : ''}`;
  for (const t of bias ? [a, b, bias] : [a, b]) {
    if (t.dtype !== 'f32') throw new DTypeError(`matmul: expects f32 tensors, got ${t.dtype} in ${desc()} (cast first)`);
  }
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmul: both operands need rank ≥ 2, got ${desc()}`);
  if (!(act in ACT)) throw new ArgumentError(`matmul: unknown activation '${act}'`);
  const [M, K] = dims(a, transA);
  const [Kb, N] = dims(b, transB);
  if (K !== Kb) throw new ShapeError(`matmul: inner dimensions differ (${K} vs ${Kb}) in ${desc()}`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== N)) throw new ShapeError(`matmul: bias must be [${N}], got ${desc()}`);
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const outBatch = broadcastShapes(aBatch, bBatch, 'matmul');
  const nb = numel(outBatch);

  // Operands whose batch is neither full nor a single matrix are expanded (a differentiable copy).
  const fits = (bt: readonly number[]) => numel(bt) === nb || numel(bt) === 1;
  if (!fits(aBatch) || !fits(bBatch)) {
    const ea = fits(aBatch) ? a : expandTo(a, [...outBatch, ...a.shape.slice(-2)]);
    const eb = fits(bBatch) ? b : expandTo(b, [...outBatch, ...b.shape.slice(-2)]);
    const out = matmul(ea, eb, opts);
    if (ea !== a) ea.dispose();
    if (eb !== b) eb.dispose();
    return out;
  }

  const needGrad = isGradEnabled() && [a, b, bias].some((t) => t?.requiresGrad);
  if (needGrad && act !== 'none') {
    // Unfused when recording: z = a·b + bias on the tape, then the elementwise activation (its backward).
    const z = matmul(a, b, { ...opts, activation: 'none' });
    const y = unary(act as UnaryOp, z);
    z.dispose();
    return y;
  }

  const out = Tensor.empty([...outBatch, M, N]);
  if (out.size > 0) {
    const aFull = numel(aBatch) === nb && nb > 1;
    const bFull = numel(bBatch) === nb && nb > 1;
    // b one matrix and a row-major [.., M, K]: fold the batch into M.
    const fold = !bFull && !transA && nb > 1;
    const g: Geometry = {
      M: fold ? nb * M : M, N, K, batch: fold ? 1 : nb,
      sam: transA ? 1 : K, sak: transA ? M : 1,
      sbk: transB ? 1 : N, sbn: transB ? K : 1,
      aBs: aFull && !fold ? M * K : 0, bBs: bFull ? K * N : 0,
    };
    const cfg = opts.variant ? forcedConfig(opts.variant, g, opts) : chooseConfig(g, transA, transB);
    launch(cfg, a, b, bias, out, g, { act, hasBias: !!bias, transA, transB });
  }

  const inputs = bias ? [a, b, bias] : [a, b];
  return record('matmul', inputs, out, [a, b], (dy, [sa, sb]) => {
    const v = opts.variant;
    const gradA = () => {
      const g = transA
        ? matmul(sb, dy, { transA: transB, transB: true, variant: v })
        : matmul(dy, sb, { transB: !transB, variant: v });
      return reduceTo(g, a.shape);
    };
    const gradB = () => {
      const foldable = numel(bBatch) === 1 && nb > 1 && !transA;
      if (foldable) {
        // Σ over the batch is part of the product: [nb·M, K]ᵀ·[nb·M, N].
        const a2 = sa.view([nb * M, K]);
        const d2 = dy.view([nb * M, N]);
        const g = transB ? matmul(d2, a2, { transA: true, variant: v }) : matmul(a2, d2, { transA: true, variant: v });
        a2.dispose();
        d2.dispose();
        const out = g.view(b.shape);
        g.dispose();
        return out;
      }
      const g = transB
        ? matmul(dy, sa, { transA: true, transB: transA, variant: v })
        : matmul(sa, dy, { transA: !transA, variant: v });
      return reduceTo(g, b.shape);
    };
    const gradBias = () => {
      const d2 = dy.view([-1, N]);
      const g = sumToShape(d2, [N]);
      d2.dispose();
      return g;
    };
    return bias ? [gradA, gradB, gradBias] : [gradA, gradB];
  });
}

function reduceTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.join() === shape.join()) return g;
  let r: Tensor;
  if (numel(g.shape) === numel(shape)) r = g.view(shape);
  else r = sumToShape(g, shape);
  g.dispose();
  return r;
}

/**
 * torch.nn.Linear: x [..., in] · weightᵀ + bias, weight [out, in], bias [out]. No copies: the weight
 * is read transposed in place, and leading dims of x fold into the row count.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor, opts: { activation?: MatmulActivation; variant?: MatmulVariant } = {}): Tensor {
  if (weight.rank !== 2) throw new ShapeError(`linear: weight must be [out, in], got [${weight.shape}]`);
  if (x.rank < 1 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new ShapeError(`linear: x [${x.shape}] does not end in in_features ${weight.shape[1]} (weight [${weight.shape}])`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new ShapeError(`linear: bias must be [${weight.shape[0]}], got [${bias.shape}]`);
  }
  if (x.rank === 1) {
    const x2 = reshape(x, [1, x.shape[0]]);
    const y2 = matmul(x2, weight, { transB: true, bias, ...opts });
    const y = reshape(y2, [weight.shape[0]]);
    x2.dispose();
    y2.dispose();
    return y;
  }
  return matmul(x, weight, { transB: true, bias, ...opts });
}
