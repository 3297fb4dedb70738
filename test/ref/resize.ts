// Float64 reference of PIL's antialiased BILINEAR resize, written from its definition rather than its code:
// each output pixel o of an axis is the normalised triangle-weighted mean of the input pixels, the triangle centred
// at (o + 0.5)·scale in input coordinates (pixel x sits at x + 0.5) with half-width max(scale, 1).

/** Weights of every input pixel for output pixel o (most are zero). */
function axisWeights(inSize: number, outSize: number, o: number): Float64Array {
  const scale = inSize / outSize;
  const half = Math.max(scale, 1);
  const center = (o + 0.5) * scale;
  const w = new Float64Array(inSize);
  let sum = 0;
  for (let x = 0; x < inSize; x++) {
    w[x] = Math.max(0, 1 - Math.abs(x + 0.5 - center) / half);
    sum += w[x];
  }
  for (let x = 0; x < inSize; x++) w[x] /= sum;
  return w;
}

/**
 * Resizes HWC RGB values (0…255) to [outH, outW]: horizontal pass, then vertical, each skipped when that size is
 * unchanged. With `roundEachPass`, each pass rounds half up to integers and clamps to 0…255 as PIL's 8-bit path
 * does; `tie` then marks outputs that depend on a value within 1e-7 of a half (where PIL's 22-bit fixed-point
 * weights may round the other way).
 */
export function resizeRef(
  src: ArrayLike<number>, width: number, height: number, outH: number, outW: number, roundEachPass: boolean,
): { values: Float64Array; tie: Uint8Array } {
  let cur = Float64Array.from(src);
  let tie = new Uint8Array(cur.length);
  // One pass along an axis: `lines` lines of `inSize` pixels, pixel x of line l at base(l) + x·stride.
  const pass = (inSize: number, outSize: number, lines: number, base: (l: number) => number, stride: number, out: (l: number, o: number) => number) => {
    const next = new Float64Array(lines * outSize * 3);
    const nextTie = new Uint8Array(next.length);
    for (let o = 0; o < outSize; o++) {
      const k = axisWeights(inSize, outSize, o);
      for (let l = 0; l < lines; l++) {
        for (let c = 0; c < 3; c++) {
          let s = 0;
          let t = 0;
          for (let x = 0; x < inSize; x++) {
            const idx = base(l) + x * stride + c;
            s += k[x] * cur[idx];
            if (k[x] > 0) t |= tie[idx];
          }
          if (roundEachPass) {
            if (Math.abs(s - Math.floor(s) - 0.5) < 1e-7) t = 1;
            s = Math.min(255, Math.max(0, Math.floor(s + 0.5)));
          }
          next[out(l, o) + c] = s;
          nextTie[out(l, o) + c] = t;
        }
      }
    }
    cur = next;
    tie = nextTie;
  };
  let w = width;
  if (outW !== width) {
    pass(width, outW, height, (y) => y * width * 3, 3, (y, o) => (y * outW + o) * 3);
    w = outW;
  }
  if (outH !== height) {
    pass(height, outH, w, (x) => x * 3, w * 3, (x, o) => (o * w + x) * 3);
  }
  return { values: cur, tie };
}

/** HWC values (0…255) → CHW float64 in [-1, 1] as ToTensor + Normalize([0.5], [0.5]): (v/255 − 0.5)/0.5. */
export function normalizeRef(hwc: ArrayLike<number>, width: number, height: number): Float64Array {
  const n = width * height;
  const out = new Float64Array(3 * n);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) out[c * n + p] = (hwc[3 * p + c] / 255 - 0.5) / 0.5;
  return out;
}
