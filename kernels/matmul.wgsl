// Matmul family: C[b] = act(op(A[b]) · op(B[b]) + bias), op = identity or transpose.
//
// A is addressed as (m, k) ↦ a_base + m·sam + k·sak and B as (k, n) ↦ b_base + k·sbk + n·sbn, so the
// transposed layouts are only different strides; a_bs / b_bs are the batch strides (0 when broadcast).
// C is contiguous [batch, M, N].
//
// Variants (entry points):
//   naive      one output per invocation, serial k loop (the baseline the bench compares against).
//   gemm128 / gemm128x64 / gemm64   SGEMM with 256 invocations, 128×128 / 128×64 / 64×64 tiles,
//              double-buffered k slices, optional split-K (+ splitk_reduce); see the gemm section.
//   strip      no barriers, no subgroups: lanes along N, 8 rows per lane (A index subgroup-uniform).
//   blocked    (second section, needs `enable subgroups`): no barriers; each lane loads one of 8 rows
//              of A (4 k at a time) and the other lanes get it with subgroupBroadcast; lanes along N.
//              This is the fastest shape on lavapipe (see shared/docs/PERF-ANCHORS.md §5.3).
// The host splits this file at the "---- subgroups ----" marker and appends the second section only
// when compiling the blocked entry with the subgroups extension enabled.

override WG: u32 = 64u;        // naive / strip / blocked invocations per workgroup
override ACT: u32 = 0u;        // 0 none, 1 relu, 2 gelu (erf), 3 gelu (tanh), 4 silu
override HAS_BIAS: bool = false;
override TRANS_A: bool = false; // gemm: picks the coalesced load order only
override TRANS_B: bool = false;

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  sam: u32, sak: u32, sbk: u32, sbn: u32,
  a_bs: u32, b_bs: u32, grid_m: u32, grid_n: u32,
  kc: u32, splits: u32,  // gemm split-K: k chunk per slice, slices per batch entry (1: no split)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

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
  let i = linear_id(wg, nwg, lid);
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

// Stores 4 consecutive outputs of row `row` (a flat index), applying the epilogue, bounds-checked on N.
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

// ----------------------------------------------------------------------------------------- gemm
// GPU SGEMM (the classic CUDA-core design): 256 invocations (16 × 16) per workgroup, a BM × BN output
// tile, k staged through workgroup memory in GBK slices, double-buffered there (one barrier per slice)
// and in registers (the next slice's global loads are issued before the current slice's FMAs).
// Both operands are stored k-major in workgroup memory as vec4 groups of 4 rows / 4 columns, so the
// inner loop reads one vec4 of A and one of B per 4×4 block of outputs. The vec4 slot index is
// XOR-swizzled with k (slot ^ k), which keeps the transposing stores and the vec4 reads free of
// bank conflicts without padding (needs GBK ≤ BM/4 and GBK ≤ BN/4, powers of two).
// Global loads follow each operand's contiguous dimension (TRANS_A / TRANS_B), so they coalesce.
// Entry points differ only in the register tile: gemm8x8 (BM = BN = 128), gemm8x4 (BM = 128,
// BN = 64), gemm4x4 (BM = BN = 64). Invocation (tx, ty) = (lid % 16, lid / 16) owns row groups
// ty (+16) and column groups tx (+16); a group is 4 consecutive rows/columns.
// Split-K: workgroup z = bt·splits + s covers k in [s·kc, min(K, (s+1)·kc)); with SPLIT the raw sums
// go to c[z·M·N + m·N + n] (a scratch buffer) and `splitk_reduce` adds the slices and applies the
// epilogue.
override BM: u32 = 128u;
override BN: u32 = 128u;
override GBK: u32 = 8u;
override SPLIT: bool = false;

var<workgroup> Ga: array<vec4<f32>, 2u * GBK * BM / 4u>;  // [buffer][k][m / 4 ^ k]
var<workgroup> Gb: array<vec4<f32>, 2u * GBK * BN / 4u>;  // [buffer][k][n / 4 ^ k]
var<private> ra: array<f32, 8>;  // next slice of A / B, BM·GBK/256 resp. BN·GBK/256 per invocation
var<private> rb: array<f32, 8>;

struct GemmTile { m0: u32, n0: u32, bt: u32, split: u32, k0: u32, k1: u32 }

fn gemm_tile(wg: vec3<u32>) -> GemmTile {
  let bt = wg.z / p.splits;
  let s = wg.z % p.splits;
  let k0 = s * p.kc;
  return GemmTile(wg.y * BM, wg.x * BN, bt, s, k0, min(p.K, k0 + p.kc));
}

// Loads the k slice starting at kb (zeros outside the matrix and outside [.., t.k1)) into ra / rb.
fn gemm_fetch(t: GemmTile, lid: u32, kb: u32) {
  let ab = t.bt * p.a_bs;
  let bb = t.bt * p.b_bs;
  for (var i = 0u; i < BM * GBK / 256u; i++) {
    let e = lid + 256u * i;
    var mm: u32; var kk: u32;
    if (TRANS_A) { mm = e % BM; kk = e / BM; } else { mm = e / GBK; kk = e % GBK; }
    let m = t.m0 + mm;
    let k = kb + kk;
    var v = 0.0;
    if (m < p.M && k < t.k1) { v = a[ab + m * p.sam + k * p.sak]; }
    ra[i] = v;
  }
  for (var i = 0u; i < BN * GBK / 256u; i++) {
    let e = lid + 256u * i;
    var nn: u32; var kk: u32;
    if (TRANS_B) { nn = e / GBK; kk = e % GBK; } else { nn = e % BN; kk = e / BN; }
    let n = t.n0 + nn;
    let k = kb + kk;
    var v = 0.0;
    if (n < p.N && k < t.k1) { v = b[bb + k * p.sbk + n * p.sbn]; }
    rb[i] = v;
  }
}

// Stores ra / rb into workgroup buffer `buf` (same element mapping as gemm_fetch).
fn gemm_stash(lid: u32, buf: u32) {
  let ao = buf * GBK * (BM / 4u);
  for (var i = 0u; i < BM * GBK / 256u; i++) {
    let e = lid + 256u * i;
    var mm: u32; var kk: u32;
    if (TRANS_A) { mm = e % BM; kk = e / BM; } else { mm = e / GBK; kk = e % GBK; }
    Ga[ao + kk * (BM / 4u) + ((mm / 4u) ^ kk)][mm % 4u] = ra[i];
  }
  let bo = buf * GBK * (BN / 4u);
  for (var i = 0u; i < BN * GBK / 256u; i++) {
    let e = lid + 256u * i;
    var nn: u32; var kk: u32;
    if (TRANS_B) { nn = e / GBK; kk = e % GBK; } else { nn = e % BN; kk = e / BN; }
    Gb[bo + kk * (BN / 4u) + ((nn / 4u) ^ kk)][nn % 4u] = rb[i];
  }
}

fn gemm_slices(t: GemmTile) -> u32 {
  return select(0u, (t.k1 - t.k0 + GBK - 1u) / GBK, t.k1 > t.k0);
}

fn ga(buf: u32, kk: u32, slot: u32) -> vec4<f32> { return Ga[buf * GBK * (BM / 4u) + kk * (BM / 4u) + (slot ^ kk)]; }
fn gb(buf: u32, kk: u32, slot: u32) -> vec4<f32> { return Gb[buf * GBK * (BN / 4u) + kk * (BN / 4u) + (slot ^ kk)]; }

// 4 outputs of row m (columns nb..nb+3): raw into the split-K scratch, or through the epilogue.
fn gemm_store4(t: GemmTile, wgz: u32, m: u32, nb: u32, v: vec4<f32>) {
  if (m >= p.M) { return; }
  if (SPLIT) {
    let row = wgz * p.M * p.N + m * p.N;
    if (nb + 3u < p.N) {
      c[row + nb] = v.x; c[row + nb + 1u] = v.y; c[row + nb + 2u] = v.z; c[row + nb + 3u] = v.w;
      return;
    }
    if (nb < p.N) { c[row + nb] = v.x; }
    if (nb + 1u < p.N) { c[row + nb + 1u] = v.y; }
    if (nb + 2u < p.N) { c[row + nb + 2u] = v.z; }
    return;
  }
  store4(t.bt * p.M * p.N + m * p.N, nb, v);
}

@compute @workgroup_size(256)
fn gemm8x8(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = gemm_tile(wg);
  let tx = lid % 16u;
  let ty = lid / 16u;
  let nt = gemm_slices(t);
  // acc[(q·4 + r)·2 + qc]: row group q (ty, ty + 16), row r, column group qc (tx, tx + 16).
  var acc: array<vec4<f32>, 16>;
  acc[0] = vec4<f32>(touch_bias());
  if (nt > 0u) {
    gemm_fetch(t, lid, t.k0);
    gemm_stash(lid, 0u);
  }
  workgroupBarrier();
  for (var s = 0u; s < nt; s++) {
    let cur = s & 1u;
    if (s + 1u < nt) { gemm_fetch(t, lid, t.k0 + (s + 1u) * GBK); }
    for (var kk = 0u; kk < GBK; kk++) {
      let a0 = ga(cur, kk, ty);
      let a1 = ga(cur, kk, ty + 16u);
      let b0 = gb(cur, kk, tx);
      let b1 = gb(cur, kk, tx + 16u);
      acc[0] += a0.x * b0; acc[1] += a0.x * b1;
      acc[2] += a0.y * b0; acc[3] += a0.y * b1;
      acc[4] += a0.z * b0; acc[5] += a0.z * b1;
      acc[6] += a0.w * b0; acc[7] += a0.w * b1;
      acc[8] += a1.x * b0; acc[9] += a1.x * b1;
      acc[10] += a1.y * b0; acc[11] += a1.y * b1;
      acc[12] += a1.z * b0; acc[13] += a1.z * b1;
      acc[14] += a1.w * b0; acc[15] += a1.w * b1;
    }
    if (s + 1u < nt) { gemm_stash(lid, cur ^ 1u); }
    workgroupBarrier();
  }
  let m = t.m0 + 4u * ty;
  let m1 = m + 64u;
  let n = t.n0 + 4u * tx;
  let n1 = n + 64u;
  gemm_store4(t, wg.z, m, n, acc[0]); gemm_store4(t, wg.z, m, n1, acc[1]);
  gemm_store4(t, wg.z, m + 1u, n, acc[2]); gemm_store4(t, wg.z, m + 1u, n1, acc[3]);
  gemm_store4(t, wg.z, m + 2u, n, acc[4]); gemm_store4(t, wg.z, m + 2u, n1, acc[5]);
  gemm_store4(t, wg.z, m + 3u, n, acc[6]); gemm_store4(t, wg.z, m + 3u, n1, acc[7]);
  gemm_store4(t, wg.z, m1, n, acc[8]); gemm_store4(t, wg.z, m1, n1, acc[9]);
  gemm_store4(t, wg.z, m1 + 1u, n, acc[10]); gemm_store4(t, wg.z, m1 + 1u, n1, acc[11]);
  gemm_store4(t, wg.z, m1 + 2u, n, acc[12]); gemm_store4(t, wg.z, m1 + 2u, n1, acc[13]);
  gemm_store4(t, wg.z, m1 + 3u, n, acc[14]); gemm_store4(t, wg.z, m1 + 3u, n1, acc[15]);
}

@compute @workgroup_size(256)
fn gemm8x4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = gemm_tile(wg);
  let tx = lid % 16u;
  let ty = lid / 16u;
  let nt = gemm_slices(t);
  // acc[q·4 + r]: row group q (ty, ty + 16), row r; one column group tx.
  var acc: array<vec4<f32>, 8>;
  acc[0] = vec4<f32>(touch_bias());
  if (nt > 0u) {
    gemm_fetch(t, lid, t.k0);
    gemm_stash(lid, 0u);
  }
  workgroupBarrier();
  for (var s = 0u; s < nt; s++) {
    let cur = s & 1u;
    if (s + 1u < nt) { gemm_fetch(t, lid, t.k0 + (s + 1u) * GBK); }
    for (var kk = 0u; kk < GBK; kk++) {
      let a0 = ga(cur, kk, ty);
      let a1 = ga(cur, kk, ty + 16u);
      let b0 = gb(cur, kk, tx);
      acc[0] += a0.x * b0; acc[1] += a0.y * b0; acc[2] += a0.z * b0; acc[3] += a0.w * b0;
      acc[4] += a1.x * b0; acc[5] += a1.y * b0; acc[6] += a1.z * b0; acc[7] += a1.w * b0;
    }
    if (s + 1u < nt) { gemm_stash(lid, cur ^ 1u); }
    workgroupBarrier();
  }
  let m = t.m0 + 4u * ty;
  let m1 = m + 64u;
  let n = t.n0 + 4u * tx;
  gemm_store4(t, wg.z, m, n, acc[0]); gemm_store4(t, wg.z, m + 1u, n, acc[1]);
  gemm_store4(t, wg.z, m + 2u, n, acc[2]); gemm_store4(t, wg.z, m + 3u, n, acc[3]);
  gemm_store4(t, wg.z, m1, n, acc[4]); gemm_store4(t, wg.z, m1 + 1u, n, acc[5]);
  gemm_store4(t, wg.z, m1 + 2u, n, acc[6]); gemm_store4(t, wg.z, m1 + 3u, n, acc[7]);
}

@compute @workgroup_size(256)
fn gemm4x4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = gemm_tile(wg);
  let tx = lid % 16u;
  let ty = lid / 16u;
  let nt = gemm_slices(t);
  var acc0 = vec4<f32>(touch_bias());
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  if (nt > 0u) {
    gemm_fetch(t, lid, t.k0);
    gemm_stash(lid, 0u);
  }
  workgroupBarrier();
  for (var s = 0u; s < nt; s++) {
    let cur = s & 1u;
    if (s + 1u < nt) { gemm_fetch(t, lid, t.k0 + (s + 1u) * GBK); }
    for (var kk = 0u; kk < GBK; kk++) {
      let a0 = ga(cur, kk, ty);
      let b0 = gb(cur, kk, tx);
      acc0 += a0.x * b0; acc1 += a0.y * b0; acc2 += a0.z * b0; acc3 += a0.w * b0;
    }
    if (s + 1u < nt) { gemm_stash(lid, cur ^ 1u); }
    workgroupBarrier();
  }
  let m = t.m0 + 4u * ty;
  let n = t.n0 + 4u * tx;
  gemm_store4(t, wg.z, m, n, acc0); gemm_store4(t, wg.z, m + 1u, n, acc1);
  gemm_store4(t, wg.z, m + 2u, n, acc2); gemm_store4(t, wg.z, m + 3u, n, acc3);
}

// Split-K reduction: c[bt, m, n] = epilogue(Σ_s part[(bt·splits + s)·M·N + m·N + n]). The host binds the
// scratch buffer at both @binding(1) and @binding(2) (read-only).
@compute @workgroup_size(WG)
fn splitk_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  let mn = p.M * p.N;
  if (i >= mn * p.batch) { return; }
  let bt = i / mn;
  let r = i % mn;
  var s = touch_bias() + select(0.0, b[0], p.N == 0u);
  let base = bt * p.splits * mn + r;
  for (var j = 0u; j < p.splits; j++) { s += a[base + j * mn]; }
  c[i] = epilogue(s, r % p.N);
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
