// Shared WGSL helpers, prepended by the host (src/gpu/wgsl.ts `withCommon`) to the kernel families
// that use them. Unused ones cost nothing. `linear_id` needs the including module's `override WG`.

// Linear invocation id of a folded 1-D grid: the host folds more than 65,535 workgroups into x·y.
fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wg.x + wg.y * nwg.x) * WG + lid;
}

// Entry i of 8 u32s packed as array<vec4<u32>, 2> (shapes and strides in a uniform block, rank ≤ 8).
fn at8(v: array<vec4<u32>, 2>, i: u32) -> u32 {
  return v[i / 4u][i % 4u];
}

// erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit); WGSL has no erf builtin.
fn erf_(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

// Logistic sigmoid that never takes exp of a large positive number.
fn sigmoid_(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

// tanh that stays finite for large |x| (tanh(x) = sign(x)·(1 − e^−2|x|)/(1 + e^−2|x|)).
fn tanh_(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}

// Kahan-compensated summation: acc = (sum, compensation); start from vec2(0.0), read acc.x.
// `one` is 1.0 computed from a value the compiler cannot see when it builds the shader (kahan_one(nwg)):
// Mesa's NIR treats float ops as reassociable and folds (s + v) − s to v, which silently turns Kahan into
// a plain sum (measured on lavapipe: 5.7e-6 vs 3.4e-8 relative error over 1e5 values).
fn kahan_one(nwg: vec3<u32>) -> f32 {
  return f32(min(nwg.x, 1u));
}

fn kahan_add(acc: vec2<f32>, x: f32, one: f32) -> vec2<f32> {
  let v = x - acc.y;
  let t = acc.x + v;
  return vec2<f32>(t, (t * one - acc.x) - v);
}
