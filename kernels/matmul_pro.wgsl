enable subgroups;

// Matmul family, prologue entry point (composed after matmul.wgsl and matmul_sg.wgsl, whose Params,
// grid_coords, lane_cols, store_cols, epilogue and av4/bv4 bindings it uses, and kernels/lib/bcast8.wgsl).
//
// blocked_pro is blocked_vab (A [M, K] row-major, B an nn.Linear weight [N, K], K % 4 == 0) with A's rows
// passed through a prologue on load, so the op that produced A needs no launch of its own. On lavapipe a
// small model is bound by the cost per launch (the toy U-Net's forward was 133 launches), not by FLOPs.
//   NORM   LayerNorm: a = (x − mean)·rstd·γ + β. The lane that loads a row computes its mean and rstd first
//          (two passes over the row, as kernels/layernorm.wgsl; K ≤ 1280 in SD shapes, so the row is cheap
//          next to the N/WG column tiles that each re-read it).
//   GEGLU  a[m, k] = h[m, k]·gelu(h[m, K + k]) from the up-projection h [M, 2K] (diffusers' GEGLU, erf GELU):
//          A's row stride p.sam is 2K.
// WEIGHTS = 2 or 3: that many products of the same A in one launch (q/k/v of self-attention, k/v of
// cross-attention), c_z = A·W_zᵀ with z the grid's batch coordinate: the branch on z is workgroup-uniform and
// a column tile never straddles two weights. Outputs 1 and 2 are written without an epilogue (the host
// passes bias, activation and residual only with one weight).
override NORM: bool = false;
override GEGLU: bool = false;
override WEIGHTS: u32 = 1u;
override EPS: f32 = 1e-5;

@group(0) @binding(6) var<storage, read> w1: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> w2: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> c1: array<f32>;
@group(0) @binding(9) var<storage, read_write> c2: array<f32>;
@group(0) @binding(10) var<storage, read> gamma4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> beta4: array<vec4<f32>>;

// Weight z's 4 k at vec4 index i (z < WEIGHTS; with WEIGHTS = 1 the branches fold away).
fn w_at(z: u32, i: u32) -> vec4<f32> {
  if (WEIGHTS > 1u && z == 1u) { return w1[i]; }
  if (WEIGHTS > 2u && z == 2u) { return w2[i]; }
  return bv4[i];
}

// Mean and rstd of the A row at vec4 index ao (two passes: the variance of the centred values).
fn row_stats(ao: u32) -> vec2<f32> {
  let n4 = p.K / 4u;
  var s = vec4<f32>(0.0);
  for (var k = 0u; k < n4; k++) { s += av4[ao + k]; }
  let mean = (s.x + s.y + s.z + s.w) / f32(p.K);
  var q = vec4<f32>(0.0);
  for (var k = 0u; k < n4; k++) { let t = av4[ao + k] - mean; q += t * t; }
  return vec2<f32>(mean, inverseSqrt((q.x + q.y + q.z + q.w) / f32(p.K) + EPS));
}

fn gelu4(x: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(unary_fn(UNARY_GELU, x.x, 1.0, 0.0), unary_fn(UNARY_GELU, x.y, 1.0, 0.0),
                   unary_fn(UNARY_GELU, x.z, 1.0, 0.0), unary_fn(UNARY_GELU, x.w, 1.0, 0.0));
}

// A's k4-th group of 4 in the row at vec4 index ao, through the prologue (st: the row's mean and rstd).
fn a_load(ao: u32, k4: u32, st: vec2<f32>) -> vec4<f32> {
  let x = av4[ao + k4];
  if (NORM) { return (x - st.x) * st.y * gamma4[k4] + beta4[k4]; }
  if (GEGLU) { return x * gelu4(av4[ao + p.K / 4u + k4]); }
  return x;
}

// Output z ≥ 1: rows m0..m0+7 of columns n (COLS of them), no epilogue.
fn store_more(z: u32, m0: u32, n: vec2<u32>, acc: array<vec4<f32>, 4>) {
  for (var j = 0u; j < COLS; j++) {
    let nn = n[j];
    if (nn >= p.N) { return; }
    for (var i = 0u; i < 8u; i++) {
      let m = m0 + i;
      if (m >= p.M) { break; }
      let v = acc[2u * j + i / 4u][i & 3u];
      let o = m * p.N + nn;
      if (z == 1u) { c1[o] = v; } else { c2[o] = v; }
    }
  }
}

@compute @workgroup_size(WG)
fn blocked_pro(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
               @builtin(subgroup_invocation_id) sl: u32) {
  let g = grid_coords(wg.x + wg.y * nwg.x);
  if (g.z >= p.batch) { return; }
  let n = lane_cols(g.x, lid);
  let m0 = g.y * 8u;
  let ao = min(m0 + sl % 8u, p.M - 1u) * p.sam / 4u;
  let bo0 = min(n.x, p.N - 1u) * p.sbn / 4u;
  let bo1 = min(n.y, p.N - 1u) * p.sbn / 4u;
  var st = vec2<f32>(0.0, 1.0);
  if (NORM) { st = row_stats(ao); }
  var acc = array<vec4<f32>, 4>();
  acc[0] = vec4<f32>(touch_bias());
  for (var k = 0u; k < p.K / 4u; k++) {
    var b1 = vec4<f32>(0.0);
    if (COLS == 2u) { b1 = w_at(g.z, bo1 + k); }
    bcast8_acc2(a_load(ao, k, st), w_at(g.z, bo0 + k), b1, &acc);
  }
  if (g.z == 0u) { store_cols(0u, m0, n, acc); } else { store_more(g.z, m0, n, acc); }
}
