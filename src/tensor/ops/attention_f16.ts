// Attention on the fragment kernels (kernels/attention_f16.wgsl): QKᵀ and PV with f16 operands and
// f32 accumulation (tensor cores where the device has subgroup matrices), online softmax in f32,
// forward and backward. q, k, v may be f16 or f32 (f32 is rounded to f16 when staged); the output is
// in opts.out (default q's dtype); gradients are f32. attention() (./attention.ts) routes here when
// an input is f16 or autocast is on, for head dims up to ATTN16_MAX_HEAD_DIM.
import { DTypeError, ShapeError } from '../../errors.js';
import { gpu } from '../../gpu/runtime.js';
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';
import { ATTN16_MAX_HEAD_DIM, attn16Split, chooseAttn16Tile, planAttn16Backward, planAttn16Forward, type Attn16Types, type AttnDims } from '../plan/attn16.js';
import type { StoreType } from '../plan/frag.js';
import { requireFragKernels, storeType } from './matmul_f16.js';

export { ATTN16_MAX_HEAD_DIM };

export interface AttentionF16Options {
  scale?: number;
  causal?: boolean;
  out?: StoreType;
  /** Forces a fragment tile for both passes (tests, bench). */
  tile?: string;
  /** Operand precision in the kernels (default f16; f32: plain WGSL, for gradcheck and exact tests). */
  staging?: StoreType;
}

/** softmax(q_h k_hᵀ · scale) v_h per head on fragments; shapes as attention(): q [B, Lq, H·d], k/v [B, Lk, H·d]. */
export function attentionF16(q: Tensor, k: Tensor, v: Tensor, heads: number, opts: AttentionF16Options = {}): Tensor {
  const TQ = storeType(q, 'attentionF16');
  for (const [n, t] of [['k', k], ['v', v]] as const) {
    if (t.dtype !== q.dtype) throw new DTypeError(`attentionF16: ${n} is ${t.dtype}, q is ${q.dtype} (q, k and v share a dtype)`);
  }
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.rank !== 3) throw new ShapeError(`attentionF16: ${n} must be [B, L, H·d], got [${t.shape}]`);
  }
  const [B, Lq, C] = q.shape;
  const Lk = k.shape[1];
  if (k.shape[0] !== B || v.shape[0] !== B || k.shape[2] !== C || v.shape[2] !== C || v.shape[1] !== Lk) {
    throw new ShapeError(`attentionF16: q [${q.shape}], k [${k.shape}], v [${v.shape}] must be [B, Lq, C], [B, Lk, C], [B, Lk, C]`);
  }
  if (!Number.isInteger(heads) || heads < 1 || C % heads !== 0) throw new ShapeError(`attentionF16: ${heads} heads do not divide ${C} channels`);
  const D = C / heads;
  if (D > ATTN16_MAX_HEAD_DIM) throw new ShapeError(`attentionF16: head dim ${D} exceeds ${ATTN16_MAX_HEAD_DIM}`);
  if (Lk === 0 && Lq > 0) throw new ShapeError(`attentionF16: no keys (k [${k.shape}])`);
  const out = opts.out ?? TQ;
  const FT = opts.staging ?? 'f16';
  requireFragKernels('attentionF16', [TQ, out, FT]);
  const d: AttnDims = { B, H: heads, Lq, Lk, D, causal: opts.causal ?? false };
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const G = gpu();

  const o = Tensor.empty(q.shape, out);
  const lse = Tensor.empty([B, heads, Lq]);
  if (o.size) {
    const types: Attn16Types = { TQ, TG: 'f32', TY: 'f32', TO: out, FT };
    G.dispatch(planAttn16Forward(chooseAttn16Tile('fwd', d, types, opts.tile), d, types, scale, { q: q.buffer, k: k.buffer, v: v.buffer, o: o.buffer, lse: lse.buffer }));
  }
  const y = record('attentionF16', [q, k, v], o, [q, k, v, o, lse], (dy, [sq, sk, sv, so, slse]) => {
    // One pass makes all three gradients; the thunks run in input order and share it.
    let grads: [Tensor, Tensor, Tensor] | null = null;
    const all = () => {
      if (!grads) {
        const types: Attn16Types = { TQ, TG: storeType(dy, 'attentionF16'), TY: so.dtype as StoreType, TO: 'f32', FT };
        const t = chooseAttn16Tile('bwd', d, types, opts.tile);
        const split = attn16Split(d, t);
        const dq = Tensor.empty(q.shape);
        const dk = Tensor.empty(k.shape);
        const dv = Tensor.empty(v.shape);
        const delta = Tensor.empty([B, heads, Lq]);
        const pk = split > 1 ? Tensor.empty([split, ...k.shape]) : null;
        const pv = split > 1 ? Tensor.empty([split, ...v.shape]) : null;
        if (dq.size || dk.size) {
          const ds = planAttn16Backward(t, d, types, scale, split, {
            q: sq.buffer, k: sk.buffer, v: sv.buffer, dy: dy.buffer, o: so.buffer, lse: slse.buffer, delta: delta.buffer,
            dq: dq.buffer, dk: dk.buffer, dv: dv.buffer, pk: pk?.buffer, pv: pv?.buffer,
          });
          for (const x of ds) G.dispatch(x);
        }
        delta.dispose();
        pk?.dispose();
        pv?.dispose();
        grads = [dq, dk, dv];
      }
      return grads;
    };
    // Each thunk hands its gradient over; ones the tape never asks for are freed by the last thunk it runs.
    const need = [q.requiresGrad, k.requiresGrad, v.requiresGrad];
    const last = need.lastIndexOf(true);
    const take = (i: number) => () => {
      const g = all();
      if (i === last) g.forEach((x, j) => { if (!need[j]) x.dispose(); });
      return g[i];
    };
    return [take(0), take(1), take(2)];
  });
  lse.dispose();
  return y;
}
