// Elementwise family: unary ops (+ their gradients), binary ops with N-d broadcasting, fill.
// Ops are picked by the `OP` override (a UNARY_* or BINARY_* code from src/gpu/opcodes.ts) so each
// variant compiles to straight-line code. The unary functions live in kernels/lib/unary.wgsl.
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

@group(0) @binding(1) var<storage, read> ux: array<f32>;
@group(0) @binding(2) var<storage, read_write> uy: array<f32>;

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  uy[i] = unary_fn(OP, ux[i], p.alpha, p.beta);
}

@group(0) @binding(1) var<storage, read> gx: array<f32>;
@group(0) @binding(2) var<storage, read> gdy: array<f32>;
@group(0) @binding(3) var<storage, read_write> gdx: array<f32>;

// dx = dy * f'(x)
@compute @workgroup_size(WG)
fn unary_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  gdx[i] = gdy[i] * unary_grad_fn(OP, gx[i], p.alpha, p.beta);
}

fn binary_op(a: f32, b: f32) -> f32 {
  switch OP {
    case BINARY_ADD: { return a + b; }
    case BINARY_SUB: { return a - b; }
    case BINARY_MUL: { return a * b; }
    case BINARY_DIV: { return a / b; }
    case BINARY_MAXIMUM: { return max(a, b); }
    case BINARY_MINIMUM: { return min(a, b); }
    case BINARY_EQUAL: { return select(0.0, 1.0, a == b); }
    default: { return a; } // BINARY_FIRST: the broadcast copy of expandTo
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
    let dim = at8(p.shape, u32(d));
    let c = rem % dim;
    rem = rem / dim;
    ia += c * at8(p.a_strides, u32(d));
    ib += c * at8(p.b_strides, u32(d));
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
