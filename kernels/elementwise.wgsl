// Elementwise family: unary ops (+ their gradients), binary ops with N-d broadcasting, fill.
// Ops are picked by the `OP` override so each variant compiles to straight-line code.
// Workgroups are a linear count folded into x/y by the host (id = x + y * num_workgroups.x).

override OP: u32 = 0u;
override WG: u32 = 256u;

struct Params {
  n: u32,          // output elements
  rank: u32,       // broadcast rank (binary only)
  alpha: f32,      // unary parameter (scale, power, ...)
  beta: f32,       // unary parameter (shift)
  // binary broadcasting: output shape and per-operand strides (0 on broadcast dims), rank ≤ 8
  shape: array<vec4<u32>, 2>,
  a_strides: array<vec4<u32>, 2>,
  b_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;

fn at(v: array<vec4<u32>, 2>, i: u32) -> u32 {
  return v[i / 4u][i % 4u];
}

const GELU_C: f32 = 0.7978845608028654; // sqrt(2/pi)
const INV_SQRT2: f32 = 0.7071067811865476;
const INV_SQRT2PI: f32 = 0.3989422804014327;

// Unary op codes: 0 neg, 1 exp, 2 log, 3 sqrt, 4 rsqrt, 5 silu, 6 gelu (tanh), 7 gelu (erf),
// 8 quick_gelu, 9 sigmoid, 10 tanh, 11 relu, 12 abs, 13 square, 14 affine (alpha*x + beta),
// 15 pow (x^alpha), 16 reciprocal, 17 sin, 18 cos.
fn unary_op(x: f32) -> f32 {
  switch OP {
    case 0u: { return -x; }
    case 1u: { return exp(x); }
    case 2u: { return log(x); }
    case 3u: { return sqrt(x); }
    case 4u: { return inverseSqrt(x); }
    case 5u: { return x * sigmoid_(x); }
    case 6u: { return 0.5 * x * (1.0 + tanh_(GELU_C * (x + 0.044715 * x * x * x))); }
    case 7u: { return 0.5 * x * (1.0 + erf_(x * INV_SQRT2)); }
    case 8u: { return x * sigmoid_(1.702 * x); }
    case 9u: { return sigmoid_(x); }
    case 10u: { return tanh_(x); }
    case 11u: { return max(x, 0.0); }
    case 12u: { return abs(x); }
    case 13u: { return x * x; }
    case 14u: { return p.alpha * x + p.beta; }
    case 15u: { return pow(x, p.alpha); }
    case 16u: { return 1.0 / x; }
    case 17u: { return sin(x); }
    case 18u: { return cos(x); }
    default: { return x; }
  }
}

// d unary_op / dx at x (y = unary_op(x) where cheaper).
fn unary_grad(x: f32) -> f32 {
  switch OP {
    case 0u: { return -1.0; }
    case 1u: { return exp(x); }
    case 2u: { return 1.0 / x; }
    case 3u: { return 0.5 * inverseSqrt(x); }
    case 4u: { return -0.5 * inverseSqrt(x) / x; }
    case 5u: { let s = sigmoid_(x); return s * (1.0 + x * (1.0 - s)); }
    case 6u: {
      let u = GELU_C * (x + 0.044715 * x * x * x);
      let t = tanh_(u);
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case 7u: { return 0.5 * (1.0 + erf_(x * INV_SQRT2)) + x * INV_SQRT2PI * exp(-0.5 * x * x); }
    case 8u: { let s = sigmoid_(1.702 * x); return s * (1.0 + 1.702 * x * (1.0 - s)); }
    case 9u: { let s = sigmoid_(x); return s * (1.0 - s); }
    case 10u: { let t = tanh_(x); return 1.0 - t * t; }
    case 11u: { return select(0.0, 1.0, x > 0.0); }
    case 12u: { return sign(x); }
    case 13u: { return 2.0 * x; }
    case 14u: { return p.alpha; }
    case 15u: { return p.alpha * pow(x, p.alpha - 1.0); }
    case 16u: { return -1.0 / (x * x); }
    case 17u: { return cos(x); }
    case 18u: { return -sin(x); }
    default: { return 1.0; }
  }
}

@group(0) @binding(1) var<storage, read> ux: array<f32>;
@group(0) @binding(2) var<storage, read_write> uy: array<f32>;

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  uy[i] = unary_op(ux[i]);
}

@group(0) @binding(1) var<storage, read> gx: array<f32>;
@group(0) @binding(2) var<storage, read> gdy: array<f32>;
@group(0) @binding(3) var<storage, read_write> gdx: array<f32>;

// dx = dy * f'(x)
@compute @workgroup_size(WG)
fn unary_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  gdx[i] = gdy[i] * unary_grad(gx[i]);
}

// Binary op codes: 0 add, 1 sub, 2 mul, 3 div, 4 max, 5 min, 6 pow, 7 equal (1/0), 8 first (a: expand).
fn binary_op(a: f32, b: f32) -> f32 {
  switch OP {
    case 0u: { return a + b; }
    case 1u: { return a - b; }
    case 2u: { return a * b; }
    case 3u: { return a / b; }
    case 4u: { return max(a, b); }
    case 5u: { return min(a, b); }
    case 6u: { return pow(a, b); }
    case 7u: { return select(0.0, 1.0, a == b); }
    default: { return a; }
  }
}

override BROADCAST: bool = true;

@group(0) @binding(1) var<storage, read> ba: array<f32>;
@group(0) @binding(2) var<storage, read> bb: array<f32>;
@group(0) @binding(3) var<storage, read_write> bo: array<f32>;

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  if (!BROADCAST) {
    bo[i] = binary_op(ba[i], bb[i]);
    return;
  }
  var rem = i;
  var ia = 0u;
  var ib = 0u;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let dim = at(p.shape, u32(d));
    let c = rem % dim;
    rem = rem / dim;
    ia += c * at(p.a_strides, u32(d));
    ib += c * at(p.b_strides, u32(d));
  }
  bo[i] = binary_op(ba[ia], bb[ib]);
}

@group(0) @binding(1) var<storage, read_write> fo: array<f32>;

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  fo[i] = p.alpha;
}
