// f16 rounding for references, and the tolerance argument shared by the f16 tests.
//
// Why the f16 tolerances are what they are (f16 storage, f32 accumulation). Rounding an input to
// f16 (round to nearest even, 11 significant bits) perturbs it by a relative error δ with |δ| ≤ u =
// 2^-11 ≈ 4.9e-4, roughly uniform, so δ has standard deviation u/√3. A product a·b of two rounded
// inputs is off by δa + δb (std u·√(2/3) ≈ 4.0e-4 relative). A K-long dot product of random-sign
// terms sums K such independent errors, and so does its value: both grow like √K, so the relative
// L2 error of a matmul over random inputs is ≈ u·√(2/3) ≈ 4e-4 whatever K is. The f32
// accumulation adds ≈ √K·2^-24 (≤ 1e-6 for K ≤ 4096) and an f16 output rounding another u/√3 ≈ 2.8e-4
// (≈ 4.9e-4 together). The tests allow F16_TOL = 1.5e-3 against float64 on the unrounded inputs (3×
// the expected value: ragged shapes are small and the estimate is a mean), and F32_ACC_TOL = 1e-5
// against float64 on the f16-rounded inputs, where only the f32 accumulation differs, as for the f32
// kernels: that one catches a wrong index or a dropped tile, which the loose one could hide.
import { fromHalfBits, toHalfBits } from '../../src/tensor/half.js';

export const F16_TOL = 1.5e-3;
export const F32_ACC_TOL = 1e-5;

/** Rounds to the nearest f16 value (what an f16 tensor or f16 staging holds). */
export function f16round(a: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = fromHalfBits(toHalfBits(a[i]));
  return out;
}
