// Softmax / log-softmax over the last axis of a [rows, len] tensor, and their backward passes.
// One invocation per row with serial loops (no barriers: what lavapipe likes; rows are independent).
// The max is subtracted first, so exp never overflows; log-softmax is x - max - log Σ exp(x - max).

override WG: u32 = 64u;
override LOG: bool = false;

struct Params { rows: u32, len: u32 }

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = linear_id(wg, nwg, lid);
  if (r >= p.rows) { return; }
  let base = r * p.len;
  var m = x[base];
  for (var j = 1u; j < p.len; j++) { m = max(m, x[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < p.len; j++) { s += exp(x[base + j] - m); }
  if (LOG) {
    let ls = m + log(s);
    for (var j = 0u; j < p.len; j++) { y[base + j] = x[base + j] - ls; }
  } else {
    let inv = 1.0 / s;
    for (var j = 0u; j < p.len; j++) { y[base + j] = exp(x[base + j] - m) * inv; }
  }
}

@group(0) @binding(1) var<storage, read> gy: array<f32>;
@group(0) @binding(2) var<storage, read> gdy: array<f32>;
@group(0) @binding(3) var<storage, read_write> gdx: array<f32>;

// softmax:     dx = y ⊙ (dy − Σ dy⊙y)
// log-softmax: dx = dy − exp(y) · Σ dy
@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = linear_id(wg, nwg, lid);
  if (r >= p.rows) { return; }
  let base = r * p.len;
  var s = 0.0;
  for (var j = 0u; j < p.len; j++) {
    s += select(gdy[base + j] * gy[base + j], gdy[base + j], LOG);
  }
  for (var j = 0u; j < p.len; j++) {
    let yj = gy[base + j];
    gdx[base + j] = select(yj * (gdy[base + j] - s), gdy[base + j] - exp(yj) * s, LOG);
  }
}
