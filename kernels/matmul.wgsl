// Matmul family: C[b] = act(op(A[b]) · op(B[b]) + bias), op = identity or transpose.
//
// A is addressed as (m, k) ↦ a_base + m·sam + k·sak and B as (k, n) ↦ b_base + k·sbk + n·sbn, so the
// transposed layouts are only different strides; a_bs / b_bs are the batch strides (0 when broadcast).
// C is contiguous [batch, M, N].
//
// Variants (entry points):
//   naive      one output per invocation, serial k loop (the baseline the bench compares against).
//   tiled      GPU-style: a BM×BN tile per workgroup staged through workgroup memory in BK slices,
//              8×8 outputs per invocation (two 4-wide row groups × two 4-wide column groups).
//   strip      no barriers, no subgroups: lanes along N, 8 rows per lane (A index subgroup-uniform).
//   blocked    (second section, needs `enable subgroups`): no barriers; each lane loads one of 8 rows
//              of A (4 k at a time) and the other lanes get it with subgroupBroadcast; lanes along N.
//              This is the fastest shape on lavapipe (see shared/docs/PERF-ANCHORS.md §5.3).
// The host splits this file at the "---- subgroups ----" marker and appends the second section only
// when compiling the blocked entry with the subgroups extension enabled.

override WG: u32 = 64u;        // naive / strip / blocked invocations per workgroup
override ACT: u32 = 0u;        // 0 none, 1 relu, 2 gelu (erf), 3 gelu (tanh), 4 silu
override HAS_BIAS: bool = false;
override TX: u32 = 16u;        // tiled: workgroup is TX × TY invocations, tile is (8·TY) × (8·TX)
override TY: u32 = 16u;
override BK: u32 = 8u;         // tiled: k slice staged per barrier pair
override TRANS_A: bool = false; // tiled: picks the coalesced load order only
override TRANS_B: bool = false;

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  sam: u32, sak: u32, sbk: u32, sbn: u32,
  a_bs: u32, b_bs: u32, grid_m: u32, grid_n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit); WGSL has no erf builtin.
fn erf_(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn sigmoid_(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

fn tanh_(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}

// bias then activation, for output column n.
fn epilogue(v: f32, n: u32) -> f32 {
  var x = v;
  if (HAS_BIAS) { x += bias[n]; }
  switch ACT {
    case 1u: { return max(x, 0.0); }
    case 2u: { return 0.5 * x * (1.0 + erf_(x * 0.7071067811865476)); }
    case 3u: { return 0.5 * x * (1.0 + tanh_(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
    case 4u: { return x * sigmoid_(x); }
    default: { return x; }
  }
}

fn touch_bias() -> f32 {
  // Keeps `bias` in every entry point's auto layout when HAS_BIAS is false (the host binds a dummy).
  return select(0.0, bias[0], HAS_BIAS && p.N == 0u);
}

// ---------------------------------------------------------------------------------------- naive
@compute @workgroup_size(WG)
fn naive(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + lid;
  let mn = p.M * p.N;
  if (i >= mn * p.batch) { return; }
  let bt = i / mn;
  let r = i % mn;
  let m = r / p.N;
  let n = r % p.N;
  let ab = bt * p.a_bs + m * p.sam;
  let bb = bt * p.b_bs + n * p.sbn;
  var s = touch_bias();
  for (var k = 0u; k < p.K; k++) {
    s += a[ab + k * p.sak] * b[bb + k * p.sbk];
  }
  c[i] = epilogue(s, n);
}

// ---------------------------------------------------------------------------------------- tiled
// Tile (8·TY) rows × (8·TX) columns; As/Bs hold one BK slice, k-major, as vec4 groups of 4 rows/cols.
// Invocation (tx, ty) owns rows 4·ty + 4·TY·q + r and columns 4·tx + 4·TX·q + r (q ∈ {0,1}, r < 4),
// so neighbouring invocations read neighbouring vec4s of workgroup memory.
var<workgroup> As: array<vec4<f32>, BK * 2u * TY>;
var<workgroup> Bs: array<vec4<f32>, BK * 2u * TX>;

fn load_a(base: u32, m: u32, k: u32) -> f32 {
  if (m < p.M && k < p.K) { return a[base + m * p.sam + k * p.sak]; }
  return 0.0;
}

fn load_b(base: u32, k: u32, n: u32) -> f32 {
  if (k < p.K && n < p.N) { return b[base + k * p.sbk + n * p.sbn]; }
  return 0.0;
}

@compute @workgroup_size(TX, TY)
fn tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let BM = 8u * TY;
  let BN = 8u * TX;
  let NT = TX * TY;
  let bt = wg.z;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  let ab = bt * p.a_bs;
  let bb = bt * p.b_bs;
  // acc[(q·4 + r)·2 + qc]: row group q, row r, column group qc. Only constant indices, so it stays in registers.
  var acc: array<vec4<f32>, 16>;

  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    // Stage A[m0.., k0..] and B[k0.., n0..] (zeros outside the matrices).
    for (var e = lid; e < BM * BK; e += NT) {
      var mm: u32; var kk: u32;
      if (TRANS_A) { mm = e % BM; kk = e / BM; } else { mm = e / BK; kk = e % BK; }
      As[kk * 2u * TY + mm / 4u][mm % 4u] = load_a(ab, m0 + mm, k0 + kk);
    }
    for (var e = lid; e < BN * BK; e += NT) {
      var nn: u32; var kk: u32;
      if (TRANS_B) { nn = e / BK; kk = e % BK; } else { nn = e % BN; kk = e / BN; }
      Bs[kk * 2u * TX + nn / 4u][nn % 4u] = load_b(bb, k0 + kk, n0 + nn);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let a0 = As[kk * 2u * TY + l.y];
      let a1 = As[kk * 2u * TY + TY + l.y];
      let b0 = Bs[kk * 2u * TX + l.x];
      let b1 = Bs[kk * 2u * TX + TX + l.x];
      acc[0] += a0.x * b0; acc[1] += a0.x * b1;
      acc[2] += a0.y * b0; acc[3] += a0.y * b1;
      acc[4] += a0.z * b0; acc[5] += a0.z * b1;
      acc[6] += a0.w * b0; acc[7] += a0.w * b1;
      acc[8] += a1.x * b0; acc[9] += a1.x * b1;
      acc[10] += a1.y * b0; acc[11] += a1.y * b1;
      acc[12] += a1.z * b0; acc[13] += a1.z * b1;
      acc[14] += a1.w * b0; acc[15] += a1.w * b1;
    }
    workgroupBarrier();
  }

  let cb = bt * p.M * p.N;
  let mb = m0 + 4u * l.y;
  let mb1 = mb + 4u * TY;
  let nb0 = n0 + 4u * l.x;
  let nb1 = nb0 + 4u * TX;
  store_row(cb, mb, nb0, nb1, acc[0], acc[1]);
  store_row(cb, mb + 1u, nb0, nb1, acc[2], acc[3]);
  store_row(cb, mb + 2u, nb0, nb1, acc[4], acc[5]);
  store_row(cb, mb + 3u, nb0, nb1, acc[6], acc[7]);
  store_row(cb, mb1, nb0, nb1, acc[8], acc[9]);
  store_row(cb, mb1 + 1u, nb0, nb1, acc[10], acc[11]);
  store_row(cb, mb1 + 2u, nb0, nb1, acc[12], acc[13]);
  store_row(cb, mb1 + 3u, nb0, nb1, acc[14], acc[15]);
}

fn store4(row: u32, nb: u32, v: vec4<f32>) {
  if (nb + 3u < p.N) {
    c[row + nb] = epilogue(v.x, nb);
    c[row + nb + 1u] = epilogue(v.y, nb + 1u);
    c[row + nb + 2u] = epilogue(v.z, nb + 2u);
    c[row + nb + 3u] = epilogue(v.w, nb + 3u);
    return;
  }
  if (nb < p.N) { c[row + nb] = epilogue(v.x, nb); }
  if (nb + 1u < p.N) { c[row + nb + 1u] = epilogue(v.y, nb + 1u); }
  if (nb + 2u < p.N) { c[row + nb + 2u] = epilogue(v.z, nb + 2u); }
}

fn store_row(cb: u32, m: u32, nb0: u32, nb1: u32, v0: vec4<f32>, v1: vec4<f32>) {
  if (m >= p.M) { return; }
  store4(cb + m * p.N, nb0, v0);
  store4(cb + m * p.N, nb1, v1);
}

// ---------------------------------------------------------------------------------------- strip
// Workgroup t covers rows 8·gm .. 8·gm+7 and columns WG·gn .. WG·gn+WG-1 of batch bt; A's address
// depends only on the workgroup and the loop counter (subgroup-uniform), B's on the lane.
fn grid_coords(t: u32) -> vec3<u32> {
  let gn = t % p.grid_n;
  let rest = t / p.grid_n;
  return vec3<u32>(gn, rest % p.grid_m, rest / p.grid_m);
}

fn store_rows(cb: u32, m0: u32, n: u32, lo: vec4<f32>, hi: vec4<f32>) {
  if (n >= p.N) { return; }
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + i;
    if (m >= p.M) { return; }
    let v = select(hi[i & 3u], lo[i & 3u], i < 4u);
    c[cb + m * p.N + n] = epilogue(v, n);
  }
}

fn a4(base: u32, m: u32, k: u32) -> vec4<f32> {
  let o = base + min(m, p.M - 1u) * p.sam + k * p.sak;
  return vec4<f32>(a[o], a[o + p.sak], a[o + 2u * p.sak], a[o + 3u * p.sak]);
}

@compute @workgroup_size(WG)
fn strip(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = grid_coords(wg.x + wg.y * nwg.x);
  if (g.z >= p.batch) { return; }
  let n = g.x * WG + lid;
  let m0 = g.y * 8u;
  let ab = g.z * p.a_bs;
  let bo = g.z * p.b_bs + min(n, p.N - 1u) * p.sbn;
  var lo = vec4<f32>(touch_bias());
  var hi = vec4<f32>(0.0);
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    let o = bo + k * p.sbk;
    let bv = vec4<f32>(b[o], b[o + p.sbk], b[o + 2u * p.sbk], b[o + 3u * p.sbk]);
    lo.x += dot(a4(ab, m0, k), bv);
    lo.y += dot(a4(ab, m0 + 1u, k), bv);
    lo.z += dot(a4(ab, m0 + 2u, k), bv);
    lo.w += dot(a4(ab, m0 + 3u, k), bv);
    hi.x += dot(a4(ab, m0 + 4u, k), bv);
    hi.y += dot(a4(ab, m0 + 5u, k), bv);
    hi.z += dot(a4(ab, m0 + 6u, k), bv);
    hi.w += dot(a4(ab, m0 + 7u, k), bv);
  }
  for (; k < p.K; k++) {
    let bv = b[bo + k * p.sbk];
    var av: array<f32, 8>;
    for (var i = 0u; i < 8u; i++) { av[i] = a[ab + min(m0 + i, p.M - 1u) * p.sam + k * p.sak]; }
    lo += vec4<f32>(av[0], av[1], av[2], av[3]) * bv;
    hi += vec4<f32>(av[4], av[5], av[6], av[7]) * bv;
  }
  store_rows(g.z * p.M * p.N, m0, n, lo, hi);
}

// ---- subgroups ----
// blocked: like strip, but lane l loads row m0 + l%8 of A (4 k at a time) and every lane takes row i
// with subgroupBroadcast(…, i): one lane-varying load per row instead of a uniform load per lane.
// Needs a subgroup size ≥ 8 (lavapipe: 8; NVIDIA: 32).
@compute @workgroup_size(WG)
fn blocked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
           @builtin(subgroup_invocation_id) sl: u32) {
  let g = grid_coords(wg.x + wg.y * nwg.x);
  if (g.z >= p.batch) { return; }
  let n = g.x * WG + lid;
  let m0 = g.y * 8u;
  let ao = g.z * p.a_bs + min(m0 + sl % 8u, p.M - 1u) * p.sam;
  let bo = g.z * p.b_bs + min(n, p.N - 1u) * p.sbn;
  var lo = vec4<f32>(touch_bias());
  var hi = vec4<f32>(0.0);
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    let oa = ao + k * p.sak;
    let av = vec4<f32>(a[oa], a[oa + p.sak], a[oa + 2u * p.sak], a[oa + 3u * p.sak]);
    let ob = bo + k * p.sbk;
    let bv = vec4<f32>(b[ob], b[ob + p.sbk], b[ob + 2u * p.sbk], b[ob + 3u * p.sbk]);
    lo.x += dot(subgroupBroadcast(av, 0u), bv);
    lo.y += dot(subgroupBroadcast(av, 1u), bv);
    lo.z += dot(subgroupBroadcast(av, 2u), bv);
    lo.w += dot(subgroupBroadcast(av, 3u), bv);
    hi.x += dot(subgroupBroadcast(av, 4u), bv);
    hi.y += dot(subgroupBroadcast(av, 5u), bv);
    hi.z += dot(subgroupBroadcast(av, 6u), bv);
    hi.w += dot(subgroupBroadcast(av, 7u), bv);
  }
  for (; k < p.K; k++) {
    let av = a[ao + k * p.sak];
    let bv = b[bo + k * p.sbk];
    lo += vec4<f32>(subgroupBroadcast(av, 0u), subgroupBroadcast(av, 1u), subgroupBroadcast(av, 2u), subgroupBroadcast(av, 3u)) * bv;
    hi += vec4<f32>(subgroupBroadcast(av, 4u), subgroupBroadcast(av, 5u), subgroupBroadcast(av, 6u), subgroupBroadcast(av, 7u)) * bv;
  }
  store_rows(g.z * p.M * p.N, m0, n, lo, hi);
}
