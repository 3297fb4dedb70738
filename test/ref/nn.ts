// Float64 references for the nn layers (row-major Float64Arrays).

export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    // Maclaurin series: 2/√π Σ (-1)ⁿ x^(2n+1) / (n! (2n+1))
    let term = x;
    let s = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      s += add;
      if (Math.abs(add) < 1e-17 * Math.abs(s)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * s;
  }
  // erfc continued fraction (Lentz) for large |x|.
  let f = ax;
  let c = ax;
  let d = 0;
  for (let n = 1; n < 300; n++) {
    const an = n / 2;
    d = ax + an * d;
    d = 1 / d;
    c = ax + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

/** y [M, out] = x [M, in] · Wᵀ + b. */
export function linearRef(x: Float64Array, m: number, w: Float64Array, out: number, inF: number, b?: Float64Array): Float64Array {
  const y = new Float64Array(m * out);
  for (let i = 0; i < m; i++) {
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let k = 0; k < inF; k++) s += x[i * inF + k] * w[o * inF + k];
      y[i * out + o] = s;
    }
  }
  return y;
}

/** Multi-head attention on [B, L, H·d] layouts. */
export function attentionRef(
  q: Float64Array, k: Float64Array, v: Float64Array,
  b: number, lq: number, lk: number, heads: number, d: number, scale: number, causal = false,
): Float64Array {
  const c = heads * d;
  const out = new Float64Array(b * lq * c);
  const s = new Float64Array(lk);
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < lq; i++) {
        let mx = -Infinity;
        for (let j = 0; j < lk; j++) {
          if (causal && j > i) { s[j] = -Infinity; continue; }
          let acc = 0;
          for (let t = 0; t < d; t++) acc += q[(bi * lq + i) * c + h * d + t] * k[(bi * lk + j) * c + h * d + t];
          s[j] = acc * scale;
          mx = Math.max(mx, s[j]);
        }
        let z = 0;
        for (let j = 0; j < lk; j++) { s[j] = Math.exp(s[j] - mx); z += s[j]; }
        for (let t = 0; t < d; t++) {
          let acc = 0;
          for (let j = 0; j < lk; j++) acc += s[j] * v[(bi * lk + j) * c + h * d + t];
          out[(bi * lq + i) * c + h * d + t] = acc / z;
        }
      }
    }
  }
  return out;
}

/** GEGLU feed-forward: h = x W0ᵀ + b0 → value·gelu(gate) → · W2ᵀ + b2. */
export function feedForwardRef(
  x: Float64Array, m: number, dim: number, inner: number, dimOut: number,
  w0: Float64Array, b0: Float64Array, w2: Float64Array, b2: Float64Array,
): Float64Array {
  const h = linearRef(x, m, w0, 2 * inner, dim, b0);
  const a = new Float64Array(m * inner);
  for (let i = 0; i < m; i++) for (let j = 0; j < inner; j++) a[i * inner + j] = h[i * 2 * inner + j] * gelu(h[i * 2 * inner + inner + j]);
  return linearRef(a, m, w2, dimOut, inner, b2);
}
