// GEGLU (diffusers' GEGLU after its proj): h [rows, 2·D] → out [rows, D],
//   out[r, j] = value · gelu(gate),   value = h[r, j], gate = h[r, D + j],  exact (erf) GELU.
// Backward, one launch writing both halves of dh:
//   dvalue = dy · gelu(gate),   dgate = dy · value · gelu'(gate),   gelu'(g) = Φ(g) + g·φ(g).
// One invocation per output element (no barriers; neighbouring lanes read neighbouring columns).

override WG: u32 = 256u;

struct Params {
  n: u32,   // rows · D
  D: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

const INV_SQRT2: f32 = 0.7071067811865476;
const INV_SQRT2PI: f32 = 0.3989422804014327;

// Φ(x) = P(Z ≤ x) = ½(1 + erf(x/√2))
fn cdf(x: f32) -> f32 { return 0.5 * (1.0 + erf_(x * INV_SQRT2)); }

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
  fo[i] = v * (g * cdf(g));
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
  let c = cdf(g);
  bdh[vi] = dy * (g * c);
  bdh[vi + p.D] = dy * v * (c + g * INV_SQRT2PI * exp(-0.5 * g * g));
}
