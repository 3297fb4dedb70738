// Matmul autotuning and the configuration choice for a product.
//
// Choice (chooseMatmulConfig): the op's forced variant (tests, bench) > settings.matmulVariant
// (LPO_MATMUL_VARIANT) > 'blocked' on software adapters > on GPUs the autotuned winner for the shape's
// bucket > staticConfig. Tuning (src/gpu/autotune.ts) times each candidate on private buffers with GPU
// timestamps; its pipelines come from the runtime's one pipeline cache (`build`, private error scopes).
import { Autotuner, hashString, timeDispatches, tuneCacheFile, type TimedDispatch } from '../../gpu/autotune.js';
import { packParams } from '../../gpu/params.js';
import { foldWorkgroups, gpu, type Gpu } from '../../gpu/runtime.js';
import { settings } from '../../settings.js';
import {
  MATMUL_SOURCES, configId, forcedConfig, parseConfigId, planMatmul, scratchElems, staticConfig, tuneCandidates,
  type MatmulConfig, type MatmulFlags, type MatmulGeometry, type MatmulVariant, type PlanBuffers,
} from './matmul.js';

const tuners = new WeakMap<Gpu, Autotuner>();

/** The matmul autotuner of the current GPU (records per shape bucket; file cache per adapter). */
export function matmulAutotuner(): Autotuner {
  const g = gpu();
  let t = tuners.get(g);
  if (!t) {
    const s = g.summary;
    const adapter = `${s.vendor}-${s.device || s.description}`;
    const file = settings.autotuneCache ? tuneCacheFile('matmul', adapter) : null;
    t = new Autotuner({ file, version: `${hashString(MATMUL_SOURCES.join(''))}-${s.description}` });
    tuners.set(g, t);
  }
  return t;
}

/** Whether this process tunes matmul: a GPU (never software) with timestamps, settings.autotune not 'off'. */
export function matmulAutotuneEnabled(g: Gpu = gpu()): boolean {
  return !g.isSoftware && g.acquired.hasTimestamps && settings.autotune !== 'off';
}

const p2 = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));
/** Shape bucket: M, N, K, batch rounded up to powers of two, plus the transposes. */
export function matmulBucket(g: MatmulGeometry, transA: boolean, transB: boolean): string {
  return `${p2(g.M)}x${p2(g.N)}x${p2(g.K)}b${p2(g.batch)}${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
}

/** Products below this many FLOPs are not tuned (the static choice is fine; tuning costs more). */
const MIN_TUNE_FLOPS = 2 ** 22;

/**
 * GPU time (ns) of one product under configuration `id` on private zero-filled buffers (the
 * autotuner's measure; exported for tests and tools, it runs on any adapter with timestamps).
 */
export async function measureConfig(id: string, g: MatmulGeometry, f: MatmulFlags): Promise<number> {
  const G = gpu();
  const dev = G.device;
  const cfg = parseConfigId(id);
  if (cfg.variant === 'blocked' && !G.hasSubgroups8) return Infinity;
  const aElems = (g.batch - 1) * g.aBs + (g.M - 1) * g.sam + (g.K - 1) * g.sak + 1;
  const bElems = (g.batch - 1) * g.bBs + (g.K - 1) * g.sbk + (g.N - 1) * g.sbn + 1;
  const make = (elems: number, label: string) => dev.createBuffer({ size: Math.max(256, Math.ceil(elems / 64) * 256), usage: GPUBufferUsage.STORAGE, label });
  const se = scratchElems(cfg, g);
  const bufs: PlanBuffers = { a: make(aElems, 'tune.a'), b: make(bElems, 'tune.b'), bias: make(g.N, 'tune.bias'), c: make(g.batch * g.M * g.N, 'tune.c') };
  if (se) bufs.scratch = make(se, 'tune.scratch');
  try {
    const timed: TimedDispatch[] = [];
    for (const d of planMatmul(cfg, g, f, bufs)) {
      const pipe = await G.pipelines.build(d.kernel);
      const wgs = typeof d.workgroups === 'number' ? foldWorkgroups(d.workgroups) : d.workgroups;
      const params = packParams(d.params!, pipe.label);
      timed.push({ pipeline: pipe.pipeline, buffers: d.buffers as GPUBuffer[], params, workgroups: [wgs[0], wgs[1] ?? 1, wgs[2] ?? 1] });
    }
    const ns = await timeDispatches(dev, timed, 5, 2);
    return ns + settings.autotuneDispatchNs * (timed.length - 1);
  } finally {
    for (const b of Object.values(bufs)) (b as GPUBuffer | undefined)?.destroy();
  }
}

/**
 * Starts tuning the bucket of this product (if new) and resolves when it is tuned. Ops do this
 * themselves in the background on GPUs (settings.autotune 'background'); callers that want tuned
 * choices from the first product (bench) await this or `matmulAutotuner().idle()`.
 */
export function autotuneMatmul(g: MatmulGeometry, transA = false, transB = false): Promise<unknown> {
  const G = gpu();
  if (!matmulAutotuneEnabled(G)) return Promise.resolve(undefined);
  const f: MatmulFlags = { act: 'none', hasBias: false, transA, transB };
  const geo = { ...g };
  return matmulAutotuner().request(
    matmulBucket(g, transA, transB),
    () => tuneCandidates(geo, { subgroups: G.hasSubgroups8, storage: G.device.limits.maxComputeWorkgroupStorageSize }),
    (id) => measureConfig(id, geo, f),
  );
}

/** The configuration for a product: forced by the caller, or chosen as described at the top. */
export function chooseMatmulConfig(g: MatmulGeometry, transA: boolean, transB: boolean, forced?: { variant: MatmulVariant; splitK?: number; bk?: number }): MatmulConfig {
  if (forced) return forcedConfig(forced.variant, g, forced);
  if (settings.matmulVariant) return forcedConfig(settings.matmulVariant, g);
  const G = gpu();
  if (G.isSoftware) return { variant: 'blocked', splitK: 1, bk: 8 };
  if (matmulAutotuneEnabled(G)) {
    const tuner = matmulAutotuner();
    const id = tuner.get(matmulBucket(g, transA, transB));
    if (id) return parseConfigId(id);
    if (settings.autotune === 'background' && 2 * g.M * g.N * g.K * g.batch >= MIN_TUNE_FLOPS) void autotuneMatmul(g, transA, transB);
  }
  return staticConfig(g);
}

/** The configuration an unforced product of this geometry would use right now (bench, reports). */
export function currentMatmulConfig(g: MatmulGeometry, transA = false, transB = false): string {
  return configId(chooseMatmulConfig(g, transA, transB));
}
