// Tile choice and autotuning for the fragment kernels (matmul_f16 here; conv2d_f16 and attention_f16
// tune through the same helpers). Choice: a tile forced by the caller (tests, bench) > on software
// adapters the static tile > on GPUs the autotuned winner for the shape's bucket > the static tile.
// Tuning times each candidate on private zero-filled buffers with GPU timestamps (src/gpu/autotune.ts),
// pipelines from the runtime's one cache; a candidate that fails to compile is dropped.
import { Autotuner, hashString, timeDispatches, tuneCacheFile, type TimedDispatch } from '../../gpu/autotune.js';
import { KERNEL_FILES, LIB_FILES } from '../../gpu/wgsl.js';
import { packParams } from '../../gpu/params.js';
import { foldWorkgroups, gpu, type Dispatch, type Gpu } from '../../gpu/runtime.js';
import { settings } from '../../settings.js';
import { parseTileId, tileId, type FragTile, type StoreType } from './frag.js';
import { mm16Candidates, mm16ScratchElems, planMm16, staticMm16Tile, type Mm16Flags, type Mm16Geometry, type Mm16Types } from './mm16.js';

const tuners = new WeakMap<Gpu, Map<string, Autotuner>>();

/** The autotuner of a fragment family on the current GPU (file cache per adapter, versioned by the kernel sources). */
export function fragAutotuner(family: 'matmul_f16' | 'conv2d_f16' | 'attention_f16'): Autotuner {
  const g = gpu();
  let m = tuners.get(g);
  if (!m) tuners.set(g, (m = new Map()));
  let t = m.get(family);
  if (!t) {
    const s = g.summary;
    const adapter = `${s.vendor}-${s.device || s.description}`;
    const src = KERNEL_FILES[family] + LIB_FILES.frag_sm + LIB_FILES.frag_simt;
    t = new Autotuner({ file: settings.autotuneCache ? tuneCacheFile(family, adapter) : null, version: `${hashString(src)}-${s.description}` });
    m.set(family, t);
  }
  return t;
}

/** Whether fragment kernels are tuned here: a GPU (never software) with timestamps, settings.autotune not 'off'. */
export function fragAutotuneEnabled(g: Gpu = gpu()): boolean {
  return !g.isSoftware && g.acquired.hasTimestamps && settings.autotune !== 'off';
}

const p2 = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));

/** GPU time (ns) of a dispatch list on private buffers (`buffers[i]` sized in bytes; all zero-filled). */
export async function measureDispatches(plan: (bufs: GPUBuffer[]) => Dispatch[], sizes: number[], G: Gpu = gpu()): Promise<number> {
  const bufs = sizes.map((bytes, i) => G.device.createBuffer({ size: Math.max(256, Math.ceil(bytes / 256) * 256), usage: GPUBufferUsage.STORAGE, label: `tune.${i}` }));
  try {
    const timed: TimedDispatch[] = [];
    for (const d of plan(bufs)) {
      const pipe = await G.pipelines.build(d.kernel);
      const w = typeof d.workgroups === 'number' ? foldWorkgroups(d.workgroups) : d.workgroups;
      timed.push({ pipeline: pipe.pipeline, buffers: d.buffers as GPUBuffer[], params: packParams(d.params!, pipe.label), workgroups: [w[0], w[1] ?? 1, w[2] ?? 1] });
    }
    const ns = await timeDispatches(G.device, timed, 5, 2);
    return ns + settings.autotuneDispatchNs * (timed.length - 1);
  } finally {
    for (const b of bufs) b.destroy();
  }
}

/** Shape bucket of a product: M, N, K + K2, batch rounded up to powers of two, transposes and storage types. */
export function mm16Bucket(g: Mm16Geometry, f: Pick<Mm16Flags, 'transA' | 'transB'>, types: Mm16Types): string {
  return `${p2(g.M)}x${p2(g.N)}x${p2(g.K + g.K2)}b${p2(g.batch)}${f.transA ? 'T' : 'N'}${f.transB ? 'T' : 'N'}.${types.TA}${types.TB}${types.TC}${types.FT}`;
}

function measureMm16(id: string, g: Mm16Geometry, f: Mm16Flags, types: Mm16Types): Promise<number> {
  const t = parseTileId(id);
  const by = (s: StoreType) => (s === 'f16' ? 2 : 4);
  const aElems = (g.batch - 1) * g.aBs + (g.M - 1) * g.sam + (g.K - 1) * g.sak + 1;
  const bElems = (g.batch - 1) * g.bBs + (g.K - 1) * g.sbk + (g.N - 1) * g.sbn + 1;
  const sizes = [aElems * by(types.TA), bElems * by(types.TB), g.N * 4, g.batch * g.M * g.N * by(types.TC), g.M * g.K2 * 4, (g.K2 * g.sb2k + g.N * g.sb2n) * 4, mm16ScratchElems(t, g) * 4];
  return measureDispatches(([a, b, bias, c, a2, b2, scratch]) => planMm16(t, g, f, types, { a, b, bias, c, a2, b2, scratch }), sizes);
}

/** Products below this many FLOPs are not tuned (the static choice is fine; tuning costs more). */
const MIN_TUNE_FLOPS = 2 ** 22;

/** Starts tuning the bucket of this product (if new); resolves when it is tuned (bench awaits it). */
export function autotuneMm16(g: Mm16Geometry, f: Mm16Flags, types: Mm16Types): Promise<unknown> {
  if (!fragAutotuneEnabled()) return Promise.resolve(undefined);
  const geo = { ...g };
  const flags = { ...f, hasBias: false, act: 'none' as const };
  return fragAutotuner('matmul_f16').request(mm16Bucket(g, f, types), () => mm16Candidates(geo, types.FT), (id) => measureMm16(id, geo, flags, types));
}

/** The tile for a product: forced by the caller, or chosen as described at the top. */
export function chooseMm16Tile(g: Mm16Geometry, f: Mm16Flags, types: Mm16Types, forced?: string): FragTile {
  if (forced) return parseTileId(forced);
  const G = gpu();
  if (fragAutotuneEnabled(G)) {
    const id = fragAutotuner('matmul_f16').get(mm16Bucket(g, f, types));
    if (id) return parseTileId(id);
    if (settings.autotune === 'background' && 2 * g.M * g.N * (g.K + g.K2) * g.batch >= MIN_TUNE_FLOPS) void autotuneMm16(g, f, types);
  }
  return staticMm16Tile(g, types.FT, G);
}

/** The tile id an unforced product of this geometry would use right now (bench, reports). */
export function currentMm16Tile(g: Mm16Geometry, f: Mm16Flags, types: Mm16Types): string {
  return tileId(chooseMm16Tile(g, f, types));
}
