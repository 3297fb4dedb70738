// Every setting of lpo-wgsl in one typed object: the `LPO_*` environment variables are read once, when
// this module loads, and nothing else reads process.env for them. Code reads `settings.x` where it needs
// the value (a property read, cheap enough for the dispatch path), so an override takes effect at once.
// Tests and benches override through `withSettings({ ... }, fn)` (or `overrideSettings`, which returns the
// restore function), never by assigning to the object.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ArgumentError } from './errors.js';

export const MATMUL_VARIANTS = ['naive', 'blocked', 'strip', 'gemm128', 'gemm128x64', 'gemm64'] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];
const NORM_VARIANTS = ['auto', 'serial', 'wg'] as const;
const LORA_VARIANTS = ['auto', 'rows', 'tiled'] as const;
const AUTOTUNE_MODES = ['off', 'explicit', 'background'] as const;
export const CONV2D_VARIANTS = ['rb', 'sg', 'tiled', 'gemm'] as const;
const FRAG_UNITS = ['auto', 'sm', 'simt'] as const;

export interface Settings {
  /** LPO_ADAPTER: prefer the adapter whose name contains this (Dawn `adapter=` toggle), e.g. 'llvmpipe'. */
  adapter: string | undefined;
  /** LPO_SUBMIT_EVERY (default 128, 1–512): dispatches recorded before a submit, so the GPU starts early. */
  submitEvery: number;
  /** LPO_DEBUG_SYNC=1: submit after every dispatch and check every bind group (locates a failing kernel). */
  debugSync: boolean;
  /** LPO_CHECK_FINITE=1: check every op's output for NaN/Inf; the next sync names the first op (src/gpu/finite.ts). */
  checkFinite: boolean;
  /** LPO_DUMP_WGSL=1: print every compiled WGSL module to stderr. */
  dumpWgsl: boolean;
  /** LPO_MATMUL_VARIANT: force one matmul kernel variant for every product (default: planned per shape). */
  matmulVariant: MatmulVariant | undefined;
  /** LPO_MATMUL_SPLITK: split count of forced gemm variants (default: the heuristic). */
  matmulSplitK: number | undefined;
  /** LPO_GPU_SMS (default 132, H100/H200): multiprocessors the static matmul heuristic fills. */
  gpuSms: number;
  /**
   * LPO_AUTOTUNE: 'background' (=1; ops tune a new shape bucket in the background on GPUs with
   * timestamps), 'explicit' (only explicit autotuneMatmul() calls tune: the default under vitest, where
   * tests time nothing) or 'off' (=0). Software adapters never tune.
   */
  autotune: (typeof AUTOTUNE_MODES)[number];
  /** LPO_AUTOTUNE_CACHE=0: keep tuning results in memory only (default: a JSON file per adapter in cacheDir). */
  autotuneCache: boolean;
  /** LPO_AUTOTUNE_DISPATCH_NS (default 3000): host cost added per extra dispatch when comparing candidates. */
  autotuneDispatchNs: number;
  /** LPO_CACHE_DIR (default ~/.cache/lpo-wgsl): where tuning results are kept. */
  cacheDir: string;
  /** LPO_NORM_VARIANT: 'wg' (a workgroup per row, GPUs), 'serial' (an invocation per row, lavapipe) or 'auto'. */
  normVariant: (typeof NORM_VARIANTS)[number];
  /** LPO_ATTENTION_QPT (default 0 = automatic = 1): query rows per attention forward invocation. */
  attentionQueriesPerThread: number;
  /** LPO_LORA_VARIANT: 'tiled' (GPUs), 'rows' (lavapipe) or 'auto'; ranks over 64 always take 'rows'. */
  loraVariant: (typeof LORA_VARIANTS)[number];
  /** LPO_BENCH_FULL=1: benches run the real SD shapes on the software adapter too (minutes). */
  benchFull: boolean;
  /**
   * LPO_EXPERIMENTAL=0: create the device without Dawn's experimental features (no `allow_unsafe_apis`,
   * no `vulkan_enable_f16_on_nvidia`, no subgroup matrices); default on.
   */
  experimentalFeatures: boolean;
  /**
   * LPO_FRAG: how the fragment kernels (f16 matmul/LoRA/conv/attention, the f32 conv 'gemm' variant)
   * multiply: 'sm' (subgroup matrices: tensor cores), 'simt' (plain WGSL) or 'auto' (sm where the device offers it).
   */
  fragUnit: (typeof FRAG_UNITS)[number];
  /** LPO_CONV2D_VARIANT: force a conv2d variant for every f32 conv ('rb', 'sg', 'tiled', 'gemm'); default planned per shape. */
  conv2dVariant: (typeof CONV2D_VARIANTS)[number] | undefined;
  /**
   * LPO_FUSE=0: run the unfused op sequences (groupNorm then SiLU, conv then add, linear then add, …)
   * instead of the fused kernels: the baseline the dispatch bench compares against, and a debugging aid.
   */
  fuse: boolean;
  /**
   * LPO_PACK=0: on lavapipe, run large products straight from their operands instead of from k-contiguous copies
   * (pack_rows), and large convolutions (forward, dx, dw) with the implicit-GEMM kernels instead of through patch
   * buffers and products (im2col, col2im, im2col_t): the baseline the matmul and conv benches compare against.
   */
  pack: boolean;
  /**
   * LPO_DAWN_POLL: how the main thread waits for the GPU. 'throttle' re-arms Dawn's polling on a 1 ms timer after
   * the first 0.25 ms of a wait (src/gpu/poll.ts), 'spin' leaves Dawn's back-to-back polling; 'auto' (default):
   * throttle on software adapters, where the polling loop takes a core from lavapipe's workers.
   */
  dawnPoll: 'auto' | 'spin' | 'throttle';
  /** Bench knobs (bench/ only): LPO_BENCH_LATENT (SD1.5 benches' latent side), LPO_BENCH_B / _P (LPO prompts, pairs), LPO_BENCH_CKPT=1 (gradient checkpointing), LPO_BENCH_PROFILE=1 (per-kernel GPU times), LPO_E2E_ITERS / _EVAL / _LR (bench/lpo-e2e). */
  bench: BenchSettings;
}

/** What the benches read (bench/); unset numbers are undefined and each bench picks its own default. */
export interface BenchSettings {
  latent: number | undefined;
  b: number | undefined;
  p: number | undefined;
  checkpointing: boolean;
  profile: boolean;
  e2eIters: number | undefined;
  e2eEvalEvery: number | undefined;
  e2eLr: number | undefined;
  /** LPO_BENCH_DEMO_PHASES: the demo's phase report (src/perf/phases.ts) that bench/demo.bench.ts collects (default bench/results/demo-phases.json). */
  demoPhases: string;
  /** LPO_BENCH_F16_OUT: bench/f16-suite.ts also writes its section to this file (scripts/gpu-check.sh). */
  f16Out: string | undefined;
}

function num(env: Env, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new ArgumentError(`${name}=${v}: expected a positive number`);
  return n;
}

type Env = Record<string, string | undefined>;

function flag(env: Env, name: string): boolean {
  const v = env[name];
  if (v === undefined || v === '' || v === '0') return false;
  if (v === '1') return true;
  throw new ArgumentError(`${name}=${v}: expected 0 or 1`);
}

function int(env: Env, name: string, min: number, max: number): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ArgumentError(`${name}=${v}: expected an integer in [${min}, ${max}]`);
  return n;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[]): T | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new ArgumentError(`${name}=${v}: expected one of ${allowed.join('|')}`);
  return v as T;
}

/** Settings from an environment (process.env when this module loads); throws ArgumentError naming a bad variable. */
export function settingsFromEnv(env: Env): Settings {
  const tune = env.LPO_AUTOTUNE;
  if (tune !== undefined && tune !== '' && tune !== '0' && tune !== '1') throw new ArgumentError(`LPO_AUTOTUNE=${tune}: expected 0 or 1`);
  return {
    adapter: env.LPO_ADAPTER || undefined,
    submitEvery: int(env, 'LPO_SUBMIT_EVERY', 1, 512) ?? 128,
    debugSync: flag(env, 'LPO_DEBUG_SYNC'),
    checkFinite: flag(env, 'LPO_CHECK_FINITE'),
    dumpWgsl: flag(env, 'LPO_DUMP_WGSL'),
    matmulVariant: oneOf(env, 'LPO_MATMUL_VARIANT', MATMUL_VARIANTS),
    matmulSplitK: int(env, 'LPO_MATMUL_SPLITK', 1, 64),
    gpuSms: int(env, 'LPO_GPU_SMS', 1, 1 << 16) ?? 132,
    autotune: tune === '0' ? 'off' : tune === '1' || !env.VITEST ? 'background' : 'explicit',
    autotuneCache: env.LPO_AUTOTUNE_CACHE !== '0',
    autotuneDispatchNs: int(env, 'LPO_AUTOTUNE_DISPATCH_NS', 0, 1e9) ?? 3000,
    cacheDir: env.LPO_CACHE_DIR || join(homedir(), '.cache', 'lpo-wgsl'),
    normVariant: oneOf(env, 'LPO_NORM_VARIANT', NORM_VARIANTS) ?? 'auto',
    attentionQueriesPerThread: int(env, 'LPO_ATTENTION_QPT', 0, 64) ?? 0,
    loraVariant: oneOf(env, 'LPO_LORA_VARIANT', LORA_VARIANTS) ?? 'auto',
    benchFull: flag(env, 'LPO_BENCH_FULL'),
    experimentalFeatures: env.LPO_EXPERIMENTAL === undefined || env.LPO_EXPERIMENTAL === '' ? true : flag(env, 'LPO_EXPERIMENTAL'),
    fragUnit: oneOf(env, 'LPO_FRAG', FRAG_UNITS) ?? 'auto',
    conv2dVariant: oneOf(env, 'LPO_CONV2D_VARIANT', CONV2D_VARIANTS),
    fuse: env.LPO_FUSE === undefined || env.LPO_FUSE === '' ? true : flag(env, 'LPO_FUSE'),
    pack: env.LPO_PACK === undefined || env.LPO_PACK === '' ? true : flag(env, 'LPO_PACK'),
    dawnPoll: oneOf(env, 'LPO_DAWN_POLL', ['auto', 'spin', 'throttle'] as const) ?? 'auto',
    bench: {
      latent: int(env, 'LPO_BENCH_LATENT', 8, 256),
      b: int(env, 'LPO_BENCH_B', 1, 1024),
      p: int(env, 'LPO_BENCH_P', 1, 1024),
      checkpointing: flag(env, 'LPO_BENCH_CKPT'),
      profile: flag(env, 'LPO_BENCH_PROFILE'),
      e2eIters: int(env, 'LPO_E2E_ITERS', 1, 1e6),
      e2eEvalEvery: int(env, 'LPO_E2E_EVAL', 1, 1e6),
      e2eLr: num(env, 'LPO_E2E_LR'),
      f16Out: env.LPO_BENCH_F16_OUT || undefined,
      demoPhases: env.LPO_BENCH_DEMO_PHASES || 'bench/results/demo-phases.json',
    },
  };
}

const current: Settings = settingsFromEnv(process.env);

/** The process's settings (read-only here: override with withSettings). */
export const settings: Readonly<Settings> = current;

/**
 * Overrides some settings and returns the function that restores their previous values (for a test
 * suite's beforeAll/afterAll). Process-wide: meant for tests and benches, which run one at a time.
 */
export function overrideSettings(overrides: Partial<Settings>): () => void {
  const saved: Partial<Settings> = {};
  for (const k of Object.keys(overrides) as (keyof Settings)[]) (saved as Record<string, unknown>)[k] = current[k];
  Object.assign(current, overrides);
  return () => { Object.assign(current, saved); };
}

/** Runs `fn` with some settings overridden, restoring them afterwards (also when fn throws or its promise rejects). */
export function withSettings<R>(overrides: Partial<Settings>, fn: () => R): R {
  const restore = overrideSettings(overrides);
  let out: R;
  try {
    out = fn();
  } catch (e) {
    restore();
    throw e;
  }
  if (out instanceof Promise) return out.finally(restore) as R;
  restore();
  return out;
}
