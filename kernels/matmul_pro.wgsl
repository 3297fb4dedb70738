enable subgroups;

// Matmul family, prologue entry point (composed after matmul.wgsl and matmul_sg.wgsl, whose Params,
// grid_coords, lane_cols, store_cols, epilogue and av4/bv4 bindings it uses, and kernels/lib/bcast8.wgsl).
//
// blocked_pro is blocked_vab (A [M, K] row-major, B an nn.Linear weight [N, K], K % 4 == 0) with a LayerNorm of
// A's rows on load or a GEGLU on store, so the op that would read or write the product's operand in its own
// launch is gone. On lavapipe a small model is bound by the cost per launch (the toy U-Net's forward was 133
// launches), not by FLOPs.
//   NORM   a = (x − mean)·rstd·γ + β. The lane that loads a row computes its mean and rstd first (two passes
//          over the row, as kernels/layernorm.wgsl). Every subgroup and column tile repeats this for its rows,
//          so the host fuses it only where that costs less than a launch (src/tensor/plan/matmul.ts).
//   GEGLU  c[m, j] = (A·Wᵀ)[m, j]·gelu((A·Wᵀ)[m, N + j]) with W [2N, K] (diffusers' GEGLU: value first, erf
//          GELU): each lane accumulates the value column j and the gate column N + j (COLS is 2), so every
//          gelu is computed once, as in kernels/geglu.wgsl. Bias [2N]; no residual.
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

// A's k4-th group of 4 in the row at vec4 index ao, normalised with st (the row's mean and rstd) under NORM.
fn a_load(ao: u32, k4: u32, st: vec2<f32>) -> vec4<f32> {
  let x = av4[ao + k4];
  if (NORM) { return (x - st.x) * st.y * gamma4[k4] + beta4[k4]; }
  return x;
}

// GEGLU: rows m0..m0+7 of output column j, value in acc[0..1], gate in acc[2..3].
fn store_geglu(m0: u32, j: u32, acc: array<vec4<f32>, 4>) {
  if (j >= p.N) { return; }
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + i;
    if (m >= p.M) { return; }
    var v = acc[i / 4u][i & 3u];
    var gt = acc[2u + i / 4u][i & 3u];
    if (HAS_BIAS) { v += bias[j]; gt += bias[p.N + j]; }
    c[m * p.N + j] = v * unary_fn(UNARY_GELU, gt, 1.0, 0.0);
  }
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
  // GEGLU: lane column j of the value half and N + j of the gate half (tiles of WG output columns).
  let n = select(lane_cols(g.x, lid), vec2<u32>(g.x * WG + lid, g.x * WG + lid + p.N), GEGLU);
  let nmax = select(p.N - 1u, 2u * p.N - 1u, GEGLU);
  let m0 = g.y * 8u;
  let ao = min(m0 + sl % 8u, p.M - 1u) * p.sam / 4u;
  let bo0 = min(n.x, p.N - 1u) * p.sbn / 4u;
  let bo1 = min(n.y, nmax) * p.sbn / 4u;
  var st = vec2<f32>(0.0, 1.0);
  if (NORM) { st = row_stats(ao); }
  var acc = array<vec4<f32>, 4>();
  acc[0] = vec4<f32>(touch_bias());
  for (var k = 0u; k < p.K / 4u; k++) {
    var b1 = vec4<f32>(0.0);
    if (COLS == 2u) { b1 = w_at(g.z, bo1 + k); }
    bcast8_acc2(a_load(ao, k, st), w_at(g.z, bo0 + k), b1, &acc);
  }
  if (GEGLU) { store_geglu(m0, n.x, acc); return; }
  if (g.z == 0u) { store_cols(0u, m0, n, acc); } else { store_more(g.z, m0, n, acc); }
}
