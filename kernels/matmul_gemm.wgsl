// Matmul family, SGEMM entry points (composed after matmul.wgsl, whose bindings, Params, epilogue and
// store4 they use).
//
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
override TRANS_A: bool = false; // picks the coalesced load order only
override TRANS_B: bool = false;
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
