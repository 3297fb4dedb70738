// float64 special functions for test references.

/**
 * erf to float64 accuracy (≲ 1e-15): a positive-term series for |x| < 3 and the continued fraction of
 * erfc beyond (not the Chebyshev fit the kernel uses, so the reference is independent of it).
 */
export function erf64(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const z = Math.abs(x);
  let r: number;
  if (z < 3) {
    // erf z = 2/√π · e^{-z²} · Σ_{n≥0} 2ⁿ z^{2n+1} / (1·3·5···(2n+1)): every term positive, no cancellation.
    let term = z;
    let sum = z;
    const z2 = z * z;
    for (let n = 1; n < 300; n++) {
      term *= (2 * z2) / (2 * n + 1);
      sum += term;
      if (term < 1e-17 * sum) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * Math.exp(-z2) * sum;
  } else {
    // erfc z = e^{-z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + 2/(z + …))))), evaluated bottom-up.
    let f = z;
    for (let n = 120; n >= 1; n--) f = z + n / 2 / f;
    r = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}
