// Multi-head scaled dot-product attention (flash style: online softmax, log-sum-exp saved,
// backward recomputes the scores blockwise). See kernels/attention.wgsl.
import { ShapeError, DTypeError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';
import { attentionForwardEntry, attentionQueriesPerThread, attentionUsesSubgroups, dkdvSplit } from '../plan/variants.js';
import { routeAttention } from './autocast.js';

export { dkdvSplit };
const P = defineParams('attention.wgsl', 'Params', { B: 'u32', H: 'u32', Lq: 'u32', Lk: 'u32', C: 'u32', scale: 'f32', split: 'u32', chunk: 'u32' });

const WG = 64;
/** Largest head dimension (private arrays of d floats per invocation; the VAE mid-block uses 512). */
export const ATTENTION_MAX_HEAD_DIM = 1024;

export interface AttentionOptions {
  /** Score scale; default 1/√d. */
  scale?: number;
  /** Causal mask, top-left aligned (key j ≤ query i), as torch's `is_causal`. */
  causal?: boolean;
}

/** The module for head dim d: vec4 rows when d % 4 == 0, scalar rows otherwise; qpt query rows per forward invocation. */
function codeFor(d: number, qpt: number, sg = false): string {
  const w = vecWidth(d);
  return kernelModule('attention', { libs: [w === 4 ? 'rows_vec4' : 'rows_f32'], consts: { DV: d / w, QPT: qpt }, ...(sg ? { also: ['attention_sg'] as const } : {}) });
}

const vecWidth = (d: number) => (d % 4 === 0 ? 4 : 1);

interface Dims { B: number; H: number; Lq: number; Lk: number; d: number; C: number }

/** Rows per (b, h) of the subgroup entries: padded to a multiple of 8 so a subgroup never spans two heads. */
const pad8 = (n: number) => Math.ceil(n / 8) * 8;

function launch(entry: string, dims: Dims, causal: boolean, scale: number, buffers: GPUBuffer[], rows: number, split = 1, chunk = dims.Lq, qpt = 1): void {
  if (rows === 0) return;
  const sg = entry.endsWith('_sg');
  gpu().dispatch({
    kernel: { name: `attention.d${dims.d}.q${qpt}${sg ? '.sg' : ''}`, code: codeFor(dims.d, qpt, sg), entry, constants: { WG, CAUSAL: causal ? 1 : 0 } },
    buffers,
    params: P.of({ B: dims.B, H: dims.H, Lq: dims.Lq, Lk: dims.Lk, C: dims.C / vecWidth(dims.d), scale, split, chunk }),
    workgroups: Math.ceil(rows / WG),
  });
}

/**
 * softmax(q_h k_hᵀ · scale) v_h for every head h, with q [B, Lq, H·d], k and v [B, Lk, H·d]
 * (channel = h·d + j) → [B, Lq, H·d]. Never materialises the Lq×Lk scores; saves the
 * log-sum-exp per (b, h, query) for the backward pass.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, heads: number, opts: AttentionOptions = {}): Tensor {
  // f16 inputs or autocast: the fragment kernels (src/tensor/ops/autocast.ts).
  const routed = routeAttention(q, k, v, heads, opts, attention);
  if (routed) return routed;
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.dtype !== 'f32') throw new DTypeError(`attention: ${n} must be f32, got ${t.dtype}`);
    if (t.rank !== 3) throw new ShapeError(`attention: ${n} must be [B, L, H·d], got [${t.shape}]`);
  }
  const [B, Lq, C] = q.shape;
  const Lk = k.shape[1];
  if (k.shape[0] !== B || v.shape[0] !== B || k.shape[2] !== C || v.shape[2] !== C || v.shape[1] !== Lk) {
    throw new ShapeError(`attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] must be [B, Lq, C], [B, Lk, C], [B, Lk, C]`);
  }
  if (!Number.isInteger(heads) || heads < 1 || C % heads !== 0) {
    throw new ShapeError(`attention: ${heads} heads do not divide the channel count ${C} of q [${q.shape}]`);
  }
  const d = C / heads;
  if (d > ATTENTION_MAX_HEAD_DIM) throw new ShapeError(`attention: head dim ${d} exceeds ${ATTENTION_MAX_HEAD_DIM}`);
  if (Lk === 0 && Lq > 0) throw new ShapeError(`attention: no keys (k [${k.shape}])`);
  const causal = opts.causal ?? false;
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const dims: Dims = { B, H: heads, Lq, Lk, d, C };

  const o = Tensor.empty(q.shape);
  const lse = Tensor.empty([B, heads, Lq]);
  const qpt = attentionQueriesPerThread(d);
  const fwd = attentionForwardEntry(qpt);
  launch(fwd, dims, causal, scale, [q.buffer, k.buffer, v.buffer, o.buffer, lse.buffer], B * heads * (fwd === 'forward_sg' ? pad8(Lq) : Math.ceil(Lq / qpt)), 1, Lq, qpt);

  const out = record('attention', [q, k, v], o, [q, k, v, o, lse], (dy, [sq, sk, sv, so, slse]) => {
    // Δ = rowsum(dO ∘ O) is shared by dq and dk/dv; dk and dv come from one kernel. The thunks
    // run in input order, so the last consumer frees what the others share.
    const sg = attentionUsesSubgroups();
    const needK = k.requiresGrad;
    const needV = v.requiresGrad;
    const needKV = needK || needV;
    let delta: Tensor | null = null;
    let kv: { dk: Tensor; dv: Tensor } | null = null;
    const getDelta = () => {
      if (!delta) {
        delta = Tensor.empty([B, heads, Lq]);
        launch('bwd_delta', dims, causal, scale, [dy.buffer, so.buffer, delta.buffer], B * heads * Lq);
      }
      return delta;
    };
    const getKV = () => {
      if (!kv) {
        const dk = Tensor.empty(k.shape);
        const dv = Tensor.empty(v.shape);
        const dl = getDelta();
        const split = dkdvSplit(B, heads, Lq, Lk);
        const chunk = Math.ceil(Lq / split);
        const pk = split > 1 ? Tensor.empty([split, ...k.shape]) : dk;
        const pv = split > 1 ? Tensor.empty([split, ...v.shape]) : dv;
        const qkv = [sq.buffer, sk.buffer, sv.buffer, dy.buffer, slse.buffer, dl.buffer];
        if (sg) launch('bwd_dkdv_sg', dims, causal, scale, [...qkv, pk.buffer, pv.buffer], split * B * heads * pad8(Lk), split, chunk);
        else launch('bwd_dkdv', dims, causal, scale, [...qkv, pk.buffer, pv.buffer], split * B * heads * Lk, split, chunk);
        if (split > 1) {
          launch('bwd_dkdv_sum', dims, causal, scale, [pk.buffer, pv.buffer, dk.buffer, dv.buffer], (B * Lk * C) / vecWidth(d), split, chunk);
          pk.dispose();
          pv.dispose();
        }
        dl.dispose();
        kv = { dk, dv };
      }
      return kv;
    };
    return [
      () => {
        const dq = Tensor.empty(q.shape);
        const dl = getDelta();
        launch(sg ? 'bwd_dq_sg' : 'bwd_dq', dims, causal, scale, [sq.buffer, sk.buffer, sv.buffer, dy.buffer, slse.buffer, dl.buffer, dq.buffer], B * heads * (sg ? pad8(Lq) : Lq));
        if (!needKV) dl.dispose();
        return dq;
      },
      () => {
        const r = getKV();
        if (!needV) r.dv.dispose();
        return r.dk;
      },
      () => {
        const r = getKV();
        if (!needK) r.dk.dispose();
        return r.dv;
      },
    ];
  });
  // The LSE lives on in the tape's saved list (retained) when recorded.
  lse.dispose();
  return out;
}
