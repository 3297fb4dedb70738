// GEGLU (diffusers' GEGLU after its proj): h [rows, 2·D] → out [rows, D],
//   out[r, j] = value · gelu(gate),   value = h[r, j], gate = h[r, D + j],  exact (erf) GELU.
// Backward, one launch writing both halves of dh:
//   dvalue = dy · gelu(gate),   dgate = dy · value · gelu'(gate),   gelu'(g) = Φ(g) + g·φ(g).
// One invocation per output element (no barriers; neighbouring lanes read neighbouring columns).
// gelu and gelu' are the unary library's (kernels/lib/unary.wgsl), as for the elementwise op.

override WG: u32 = 256u;

struct Params {
  n: u32,   // rows · D
  D: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn gelu(x: f32) -> f32 { return unary_fn(UNARY_GELU, x, 1.0, 0.0); }

// Flat index of the value element for output i (the gate is D further on).
fn value_index(i: u32) -> u32 {
  let r = i / p.D;
  return i + r * p.D;   // r·2D + j
}

@group(0) @binding(1) var<storage, read> fh: array<f32>;
@group(0) @binding(2) var<storage, read_write> fo: array<f32>;

@compute @workgroup_size(WG)
fn geglu_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  let vi = value_index(i);
  let v = fh[vi];
  let g = fh[vi + p.D];
  fo[i] = v * gelu(g);
}

@group(0) @binding(1) var<storage, read> bh: array<f32>;
@group(0) @binding(2) var<storage, read> bdy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bdh: array<f32>;

@compute @workgroup_size(WG)
fn geglu_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  let vi = value_index(i);
  let v = bh[vi];
  let g = bh[vi + p.D];
  let dy = bdy[i];
  bdh[vi] = dy * gelu(g);
  bdh[vi + p.D] = dy * v * unary_grad_fn(UNARY_GELU, g, 1.0, 0.0);
}
