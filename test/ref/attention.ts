// float64 reference for multi-head attention (q [B,Lq,H·d], k/v [B,Lk,H·d], channel = h·d + j).
export interface AttnRefOpts { scale?: number; causal?: boolean }

function probs(q: Float64Array, k: Float64Array, B: number, Lq: number, Lk: number, H: number, d: number, scale: number, causal: boolean) {
  const C = H * d;
  const P = new Float64Array(B * H * Lq * Lk);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Lq; i++) {
    const row = ((b * H + h) * Lq + i) * Lk;
    let m = -Infinity;
    for (let j = 0; j < Lk; j++) {
      if (causal && j > i) { P[row + j] = -Infinity; continue; }
      let s = 0;
      for (let t = 0; t < d; t++) s += q[(b * Lq + i) * C + h * d + t] * k[(b * Lk + j) * C + h * d + t];
      P[row + j] = s * scale;
      m = Math.max(m, s * scale);
    }
    let l = 0;
    for (let j = 0; j < Lk; j++) { const e = Math.exp(P[row + j] - m); P[row + j] = e; l += e; }
    for (let j = 0; j < Lk; j++) P[row + j] /= l;
  }
  return P;
}

export function attentionRef(q: Float64Array, k: Float64Array, v: Float64Array, B: number, Lq: number, Lk: number, H: number, opts: AttnRefOpts = {}) {
  const C = q.length / (B * Lq);
  const d = C / H;
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const P = probs(q, k, B, Lq, Lk, H, d, scale, !!opts.causal);
  const o = new Float64Array(B * Lq * C);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Lq; i++) {
    const row = ((b * H + h) * Lq + i) * Lk;
    for (let j = 0; j < Lk; j++) {
      const pij = P[row + j];
      if (pij === 0) continue;
      for (let t = 0; t < d; t++) o[(b * Lq + i) * C + h * d + t] += pij * v[(b * Lk + j) * C + h * d + t];
    }
  }
  return o;
}

/** Gradients of Σ dO∘attention(q,k,v) w.r.t. q, k, v. */
export function attentionBackwardRef(q: Float64Array, k: Float64Array, v: Float64Array, dO: Float64Array, B: number, Lq: number, Lk: number, H: number, opts: AttnRefOpts = {}) {
  const C = q.length / (B * Lq);
  const d = C / H;
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const P = probs(q, k, B, Lq, Lk, H, d, scale, !!opts.causal);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  const dP = new Float64Array(Lk);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Lq; i++) {
    const row = ((b * H + h) * Lq + i) * Lk;
    const qo = (b * Lq + i) * C + h * d;
    let sum = 0;
    for (let j = 0; j < Lk; j++) {
      const ko = (b * Lk + j) * C + h * d;
      let s = 0;
      for (let t = 0; t < d; t++) s += dO[qo + t] * v[ko + t];
      dP[j] = s;
      sum += P[row + j] * s;
      for (let t = 0; t < d; t++) dv[ko + t] += P[row + j] * dO[qo + t];
    }
    for (let j = 0; j < Lk; j++) {
      const ds = P[row + j] * (dP[j] - sum) * scale;
      const ko = (b * Lk + j) * C + h * d;
      for (let t = 0; t < d; t++) {
        dq[qo + t] += ds * k[ko + t];
        dk[ko + t] += ds * q[qo + t];
      }
    }
  }
  return { dq, dk, dv };
}
