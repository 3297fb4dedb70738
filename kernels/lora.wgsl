// LoRA linear layer: y = x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ with W [N, K] frozen, A [R, K], B [N, R].
// Rows of x are M = prod(leading dims). The rank-R intermediate u = x·Aᵀ [M, R] comes from a tiny
// first pass (lora_down); lora_forward then fuses the main product, the bias and the low-rank
// update in one launch. Backward never forms dW (W is frozen):
//   g  = scale·dy·B [M, R]          (lora_gdown)
//   dx = dy·W + g·A                 (lora_dx, one launch)
//   dA = gᵀ·x                       (lora_dA)
//   dB = scale·dyᵀ·u                (lora_dB)
// One invocation per output element with a serial loop: no barriers (lavapipe); neighbouring
// invocations share the row operand (a uniform/broadcast load).

override WG: u32 = 256u;
override HAS_BIAS: bool = false;

struct Params {
  M: u32,
  N: u32,   // out features
  K: u32,   // in features
  R: u32,   // rank
  scale: f32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn linear_id(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wg.x + wg.y * nwg.x) * WG + lid;
}

// u[m, r] = Σ_k x[m, k] A[r, k]
@group(0) @binding(1) var<storage, read> dx_: array<f32>;
@group(0) @binding(2) var<storage, read> da_: array<f32>;
@group(0) @binding(3) var<storage, read_write> du_: array<f32>;

@compute @workgroup_size(WG)
fn lora_down(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.M * p.R) { return; }
  let m = i / p.R;
  let r = i % p.R;
  var s = 0.0;
  for (var k = 0u; k < p.K; k++) { s += dx_[m * p.K + k] * da_[r * p.K + k]; }
  du_[i] = s;
}

// y[m, o] = Σ_k x[m, k] W[o, k] + b[o] + scale·Σ_r u[m, r] B[o, r]
@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read> fw: array<f32>;
@group(0) @binding(3) var<storage, read> fb: array<f32>;   // any buffer when !HAS_BIAS
@group(0) @binding(4) var<storage, read> fu: array<f32>;
@group(0) @binding(5) var<storage, read> fB: array<f32>;
@group(0) @binding(6) var<storage, read_write> fy: array<f32>;

@compute @workgroup_size(WG)
fn lora_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.M * p.N) { return; }
  let m = i / p.N;
  let o = i % p.N;
  var s = 0.0;
  for (var k = 0u; k < p.K; k++) { s += fx[m * p.K + k] * fw[o * p.K + k]; }
  var t = 0.0;
  for (var r = 0u; r < p.R; r++) { t += fu[m * p.R + r] * fB[o * p.R + r]; }
  var y = s + p.scale * t;
  let bias = fb[o];
  if (HAS_BIAS) { y += bias; }
  fy[i] = y;
}

// g[m, r] = scale·Σ_o dy[m, o] B[o, r]
@group(0) @binding(1) var<storage, read> gdy: array<f32>;
@group(0) @binding(2) var<storage, read> gB: array<f32>;
@group(0) @binding(3) var<storage, read_write> gg: array<f32>;

@compute @workgroup_size(WG)
fn lora_gdown(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.M * p.R) { return; }
  let m = i / p.R;
  let r = i % p.R;
  var s = 0.0;
  for (var o = 0u; o < p.N; o++) { s += gdy[m * p.N + o] * gB[o * p.R + r]; }
  gg[i] = p.scale * s;
}

// dx[m, k] = Σ_o dy[m, o] W[o, k] + Σ_r g[m, r] A[r, k]
@group(0) @binding(1) var<storage, read> xdy: array<f32>;
@group(0) @binding(2) var<storage, read> xw: array<f32>;
@group(0) @binding(3) var<storage, read> xg: array<f32>;
@group(0) @binding(4) var<storage, read> xa: array<f32>;
@group(0) @binding(5) var<storage, read_write> xdx: array<f32>;

@compute @workgroup_size(WG)
fn lora_dx(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.M * p.K) { return; }
  let m = i / p.K;
  let k = i % p.K;
  var s = 0.0;
  for (var o = 0u; o < p.N; o++) { s += xdy[m * p.N + o] * xw[o * p.K + k]; }
  var t = 0.0;
  for (var r = 0u; r < p.R; r++) { t += xg[m * p.R + r] * xa[r * p.K + k]; }
  xdx[i] = s + t;
}

// dA[r, k] = Σ_m g[m, r] x[m, k]
@group(0) @binding(1) var<storage, read> ag: array<f32>;
@group(0) @binding(2) var<storage, read> ax: array<f32>;
@group(0) @binding(3) var<storage, read_write> ada: array<f32>;

@compute @workgroup_size(WG)
fn lora_dA(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.R * p.K) { return; }
  let r = i / p.K;
  let k = i % p.K;
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) { s += ag[m * p.R + r] * ax[m * p.K + k]; }
  ada[i] = s;
}

// dB[o, r] = scale·Σ_m dy[m, o] u[m, r]
@group(0) @binding(1) var<storage, read> bdy: array<f32>;
@group(0) @binding(2) var<storage, read> bu: array<f32>;
@group(0) @binding(3) var<storage, read_write> bdb: array<f32>;

@compute @workgroup_size(WG)
fn lora_dB(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.N * p.R) { return; }
  let o = i / p.R;
  let r = i % p.R;
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) { s += bdy[m * p.N + o] * bu[m * p.R + r]; }
  bdb[i] = p.scale * s;
}
