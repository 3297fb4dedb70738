// Kernel variant choice for the ops other than matmul (whose planning is ./matmul.ts): the rule for
// each, in one place, from the adapter and the settings (src/settings.ts). Ops call these; tests and
// benches force a variant with withSettings (or the op's own `variant` option where it has one).
import { gpu } from '../../gpu/runtime.js';
import { settings } from '../../settings.js';

/**
 * conv2d: 'sg' (lavapipe with subgroups), 'rb' (no barriers, no subgroups), 'tiled' (shared memory, GPUs),
 * 'gemm' (the fragment kernels with split-K, kernels/conv2d_f16.wgsl; conv2d routes it through
 * src/tensor/ops/autocast.ts, planned for low resolutions by src/tensor/plan/conv16.ts preferGemmConv).
 */
export type Conv2dVariant = 'rb' | 'sg' | 'tiled' | 'gemm';

/** The conv2d variant that runs for a requested one (default: 'sg', or 'rb' without subgroups, on software; 'tiled' on GPUs). */
export function resolveConv2dVariant(v: Conv2dVariant | undefined = settings.conv2dVariant): Conv2dVariant {
  const g = gpu();
  if (v === 'sg' && !g.hasSubgroups8) return 'rb';
  return v ?? (g.isSoftware ? (g.hasSubgroups8 ? 'sg' : 'rb') : 'tiled');
}

/** groupNorm/layerNorm: whether rows reduce with a whole workgroup ('wg', GPUs) rather than one invocation ('serial', lavapipe). */
export function normUsesWorkgroups(): boolean {
  const v = settings.normVariant;
  return v === 'auto' ? !gpu().isSoftware : v === 'wg';
}

/**
 * groupNorm forward for S spatial values per channel: one fused dispatch ('fused_sg' on lavapipe with
 * subgroups when S is a multiple of 4, 'fused_wg' on GPUs), or the two-dispatch statistics + apply path
 * ('stats' serial, 'stats_wg'): lavapipe without subgroups or with a ragged S, and the unfused baseline
 * (settings.fuse off) the dispatch bench compares against.
 */
export function groupNormPlan(s: number): 'fused_sg' | 'fused_wg' | 'stats' | 'stats_wg' {
  const wg = normUsesWorkgroups();
  if (!settings.fuse) return wg ? 'stats_wg' : 'stats';
  if (wg) return 'fused_wg';
  return gpu().hasSubgroups8 && s % 4 === 0 ? 'fused_sg' : 'stats';
}

/** loraLinear forward: 'tiled' (workgroup tiles, GPUs) or 'rows' (no barriers, lavapipe). */
export type LoraVariant = 'rows' | 'tiled';
/** Largest rank the tiled LoRA forward holds in workgroup memory (larger ranks use 'rows'). */
export const LORA_TILED_MAX_RANK = 64;

/** The LoRA forward variant used for rank R (a forced 'tiled' still falls back to 'rows' past rank 64). */
export function resolveLoraVariant(R: number): LoraVariant {
  const v = settings.loraVariant === 'auto' ? (gpu().isSoftware ? 'rows' : 'tiled') : settings.loraVariant;
  return v === 'tiled' && R <= LORA_TILED_MAX_RANK ? 'tiled' : 'rows';
}

/**
 * Attention: query rows per forward invocation (register blocking). Automatic = 1: on an H200
 * (d = 40, 4096², bench/attention-suite.ts) 1 row ran at 1.57 ms, 2 rows 1.93 ms, 4 rows 5.7 ms,
 * and lavapipe has even fewer registers. Capped so that rows·d ≤ 256 (at d = 512 with 4 rows the
 * NVIDIA driver failed to create the pipeline).
 */
export function attentionQueriesPerThread(d: number): number {
  const want = settings.attentionQueriesPerThread > 0 ? settings.attentionQueriesPerThread : 1;
  return Math.max(1, Math.min(want, Math.floor(256 / d)));
}

/**
 * Whether the attention kernels' subgroup entries (kernels/attention_sg.wgsl: the key or query tile spread over the
 * subgroup, 8× fewer loads) run: on the software adapter with subgroups of exactly 8 lanes, and settings.fuse on
 * (off: the plain kernels, the A/B baseline). Rows are padded per head to a multiple of 8, so any length and the
 * causal mask work.
 */
export function attentionUsesSubgroups(): boolean {
  const g = gpu();
  return g.isSoftware && g.hasSubgroups8 && g.summary.subgroupMaxSize === 8 && settings.fuse;
}

/** Attention forward entry: 'forward_sg' where attentionUsesSubgroups() and one query row per invocation; else 'forward'. */
export function attentionForwardEntry(qpt: number): 'forward' | 'forward_sg' {
  return qpt === 1 && attentionUsesSubgroups() ? 'forward_sg' : 'forward';
}

/**
 * Attention backward: how many query chunks the dk/dv pass splits into: enough invocations to fill
 * the device when there are few key rows (cross-attention's 77 keys against 4096 queries), at least
 * 64 queries a chunk.
 */
export function dkdvSplit(B: number, H: number, Lq: number, Lk: number): number {
  const target = gpu().isSoftware ? 1024 : 32768;
  const rows = B * H * Lk;
  return Math.max(1, Math.min(64, Math.ceil(target / Math.max(rows, 1)), Math.floor(Lq / 64)));
}
