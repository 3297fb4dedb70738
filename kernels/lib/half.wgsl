// f16 conversion with IEEE overflow: WGSL leaves the f16 value of an f32 beyond f16's range to the
// implementation (a clamp to ±65504 is allowed), but dynamic loss scaling needs an overflow to show
// up as ±inf. narrow(x, to16) is x, except that when the target is f16 (to16: a generated `T_F16`
// const, see src/gpu/wgsl.ts `types`) values that round beyond ±65504 become ±inf in f32 first, whose
// conversion is exact. NaN passes through. Use as T(narrow(x, T_F16)).
fn narrow(x: f32, to16: bool) -> f32 {
  return select(x, x * 3.0e38, to16 && abs(x) >= 65520.0);
}
