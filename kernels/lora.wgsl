// LoRA linear layer: y = x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ with W [N, K] frozen, A [R, K], B [N, R].
// Rows of x are M = prod(leading dims). The forward is ONE launch; the rank-R intermediate
// u = x·Aᵀ [M, R] is formed inside it, once per row block, and reused across that block's columns:
//   lora_fwd_tiled  (GPUs) a 64×128 tile of y per 256-invocation workgroup; x, W and A are staged
//                   through workgroup memory in BK-wide k slices, so one pass over k feeds both the
//                   main product (4×8 outputs per invocation) and u for the tile's 64 rows (RU/4 values
//                   per invocation). u then goes to workgroup memory (aliasing the staging area) and the
//                   epilogue adds bias + scale·u·Bᵀ. Extra work ≈ R/128 of the main product. R ≤ 64.
//   lora_fwd_rows   (lavapipe) no barriers: lanes along rows, each invocation owns one row and a span
//                   of columns (the span comes from the workgroup id, so W, A and B loads are uniform
//                   across lanes). It computes u for its row once (into registers, 64 ranks at a time),
//                   then walks its span 8 columns at a time with u·Bᵀ in the epilogue. Extra work ≈
//                   R/span. Any R (ranks past 64 are added in further read-modify-write passes).
// Both write u [M, R] to `fu` as well when p.write_u != 0 (the backward's dB needs it).
// The backward (src/tensor/ops/lora.ts) is dense products on the matmul kernels and never forms dW:
// g = scale·dy·B, dx = dy·W + g·A, dA = gᵀ·x, dB = scale·dyᵀ·u.

override WG: u32 = 256u;
override HAS_BIAS: bool = false;
override RQ: u32 = 1u;     // rows: u chunk in vec4s, ceil(min(R, 64) / 4)
override RU: u32 = 4u;     // tiled: R rounded up to a multiple of 4 (≤ 64)
override BK: u32 = 16u;    // tiled: k slice per barrier pair
override SH: u32 = 1024u;  // tiled: vec4s of workgroup memory, max(BK·(BM + BN + RU), BM·RU) / 4

struct Params {
  M: u32,
  N: u32,   // out features
  K: u32,   // in features
  R: u32,   // rank
  scale: f32,
  write_u: u32,  // forward: also store u into fu
  span: u32,     // rows: columns per invocation (a multiple of 8)
  row_blocks: u32, // rows: ceil(M / WG)
}

@group(0) @binding(0) var<uniform> p: Params;

// ------------------------------------------------------------------------------------ forward
@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read> fw: array<f32>;
@group(0) @binding(3) var<storage, read> fb: array<f32>;   // any buffer when !HAS_BIAS
@group(0) @binding(4) var<storage, read> fa: array<f32>;
@group(0) @binding(5) var<storage, read> fB: array<f32>;
@group(0) @binding(6) var<storage, read_write> fy: array<f32>;
@group(0) @binding(7) var<storage, read_write> fu: array<f32>;  // u [M, R] when p.write_u != 0

fn bias_at(n: u32) -> f32 {
  // Reads fb even when !HAS_BIAS so the binding stays in the auto layout (the host binds W then).
  return select(0.0, fb[n], HAS_BIAS);
}

// ---- rows (lavapipe) ----
const CW: u32 = 8u;          // columns per step (two vec4 accumulators)
const RCH: u32 = 64u;        // ranks per u chunk held in registers
var<private> ur: array<vec4<f32>, 16>;

// ur = u[m, r0 .. r0 + 4·RQ) (zeros past R); stored to fu too when asked.
fn rows_u(m: u32, r0: u32, store: bool) {
  let xb = m * p.K;
  for (var q = 0u; q < RQ; q++) { ur[q] = vec4<f32>(0.0); }
  for (var k = 0u; k < p.K; k++) {
    let xv = fx[xb + k];
    for (var q = 0u; q < RQ; q++) {
      let r = r0 + 4u * q;
      let a = vec4<f32>(
        select(0.0, fa[min(r, p.R - 1u) * p.K + k], r < p.R),
        select(0.0, fa[min(r + 1u, p.R - 1u) * p.K + k], r + 1u < p.R),
        select(0.0, fa[min(r + 2u, p.R - 1u) * p.K + k], r + 2u < p.R),
        select(0.0, fa[min(r + 3u, p.R - 1u) * p.K + k], r + 3u < p.R));
      ur[q] += xv * a;
    }
  }
  if (store) {
    for (var q = 0u; q < RQ; q++) {
      for (var c = 0u; c < 4u; c++) {
        let r = r0 + 4u * q + c;
        if (r < p.R) { fu[m * p.R + r] = ur[q][c]; }
      }
    }
  }
}

// Σ_r ur[r] · B[n, r0 + r] over the chunk (n < N).
fn rows_lora(n: u32, r0: u32) -> f32 {
  var t = 0.0;
  for (var q = 0u; q < RQ; q++) {
    let r = r0 + 4u * q;
    let rb = n * p.R;
    let bv = vec4<f32>(
      select(0.0, fB[rb + min(r, p.R - 1u)], r < p.R),
      select(0.0, fB[rb + min(r + 1u, p.R - 1u)], r + 1u < p.R),
      select(0.0, fB[rb + min(r + 2u, p.R - 1u)], r + 2u < p.R),
      select(0.0, fB[rb + min(r + 3u, p.R - 1u)], r + 3u < p.R));
    t += dot(ur[q], bv);
  }
  return t;
}

@compute @workgroup_size(WG)
fn lora_fwd_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let blk = wg.x + wg.y * nwg.x;            // workgroup-uniform
  let s = blk / p.row_blocks;
  let m = (blk % p.row_blocks) * WG + lid;
  let n_begin = s * p.span;
  if (m >= p.M || n_begin >= p.N) { return; }
  let n_end = min(p.N, n_begin + p.span);
  let xb = m * p.K;
  let store_u = p.write_u != 0u && s == 0u;
  rows_u(m, 0u, store_u);
  for (var n0 = n_begin; n0 < n_end; n0 += CW) {
    // W rows n0 .. n0 + 7 (clamped past N; those columns are not stored).
    var wr: array<u32, 8>;
    for (var j = 0u; j < CW; j++) { wr[j] = min(n0 + j, p.N - 1u) * p.K; }
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    for (var k = 0u; k < p.K; k++) {
      let xv = fx[xb + k];
      a0 += xv * vec4<f32>(fw[wr[0] + k], fw[wr[1] + k], fw[wr[2] + k], fw[wr[3] + k]);
      a1 += xv * vec4<f32>(fw[wr[4] + k], fw[wr[5] + k], fw[wr[6] + k], fw[wr[7] + k]);
    }
    for (var j = 0u; j < CW; j++) {
      let n = n0 + j;
      if (n >= n_end) { break; }
      var v: f32;
      if (j < 4u) { v = a0[j]; } else { v = a1[j - 4u]; }
      fy[m * p.N + n] = v + bias_at(n) + p.scale * rows_lora(n, 0u);
    }
  }
  // Ranks past the first chunk (R > 64): more u chunks, added into y.
  for (var r0 = RCH; r0 < p.R; r0 += RCH) {
    rows_u(m, r0, store_u);
    for (var n = n_begin; n < n_end; n++) {
      fy[m * p.N + n] += p.scale * rows_lora(n, r0);
    }
  }
}

// ---- tiled (GPUs) ----
// Tile BM × BN = 64 × 128, 256 invocations (tx, ty) = (lid % 16, lid / 16). Invocation owns rows
// m0 + 4·ty + i (i < 4) and columns n0 + 4·tx + 64·c + j (c < 2, j < 4). Workgroup memory `sh`
// (vec4s, k-major, 4 rows/columns/ranks per vec4): X slice at 0, W slice at XO, A slice at AO;
// after the k loop the same memory holds U [BM][RU/4].
const BM: u32 = 64u;
const BN: u32 = 128u;
var<workgroup> sh: array<vec4<f32>, SH>;

@compute @workgroup_size(256)
fn lora_fwd_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let XO = 0u;
  let WO = BK * BM / 4u;
  let AO = WO + BK * BN / 4u;
  let RV = RU / 4u;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  let tx = lid % 16u;
  let ty = lid / 16u;
  // u ownership during the k loop: row um = lid / 4, ranks 4·j + uc (j < RV).
  let um = lid / 4u;
  let uc = lid % 4u;
  var acc: array<vec4<f32>, 8>;   // acc[2·i + c]
  var ua: array<f32, 16>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var e = lid; e < BM * BK; e += 256u) {
      let mm = e / BK; let kk = e % BK;
      let m = m0 + mm; let k = k0 + kk;
      var v = 0.0;
      if (m < p.M && k < p.K) { v = fx[m * p.K + k]; }
      sh[XO + kk * (BM / 4u) + mm / 4u][mm % 4u] = v;
    }
    for (var e = lid; e < BN * BK; e += 256u) {
      let nn = e / BK; let kk = e % BK;
      let n = n0 + nn; let k = k0 + kk;
      var v = 0.0;
      if (n < p.N && k < p.K) { v = fw[n * p.K + k]; }
      sh[WO + kk * (BN / 4u) + nn / 4u][nn % 4u] = v;
    }
    for (var e = lid; e < RU * BK; e += 256u) {
      let r = e / BK; let kk = e % BK;
      let k = k0 + kk;
      var v = 0.0;
      if (r < p.R && k < p.K) { v = fa[r * p.K + k]; }
      sh[AO + kk * RV + r / 4u][r % 4u] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let xa = sh[XO + kk * (BM / 4u) + ty];
      let w0 = sh[WO + kk * (BN / 4u) + tx];
      let w1 = sh[WO + kk * (BN / 4u) + tx + 16u];
      acc[0] += xa.x * w0; acc[1] += xa.x * w1;
      acc[2] += xa.y * w0; acc[3] += xa.y * w1;
      acc[4] += xa.z * w0; acc[5] += xa.z * w1;
      acc[6] += xa.w * w0; acc[7] += xa.w * w1;
      let xu = sh[XO + kk * (BM / 4u) + um / 4u][um % 4u];
      for (var j = 0u; j < RV; j++) { ua[j] += xu * sh[AO + kk * RV + j][uc]; }
    }
    workgroupBarrier();
  }
  // U [BM][RV] into workgroup memory (the staging area is free now), and u to global if asked.
  for (var j = 0u; j < RV; j++) {
    sh[um * RV + j][uc] = ua[j];
    let m = m0 + um;
    let r = 4u * j + uc;
    if (p.write_u != 0u && wg.x == 0u && m < p.M && r < p.R) { fu[m * p.R + r] = ua[j]; }
  }
  workgroupBarrier();
  for (var c = 0u; c < 2u; c++) {
    let nb = n0 + 64u * c + 4u * tx;
    // B rows for the 4 columns (clamped past N; those columns are not stored), bias.
    var brow: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) { brow[j] = min(nb + j, p.N - 1u) * p.R; }
    let bias = vec4<f32>(bias_at(min(nb, p.N - 1u)), bias_at(min(nb + 1u, p.N - 1u)),
                         bias_at(min(nb + 2u, p.N - 1u)), bias_at(min(nb + 3u, p.N - 1u)));
    var lo: array<vec4<f32>, 4>;   // lo[i][j]: row i, column j
    // Explicit zeros: the implicit zero-init of a `var` declared in a loop body did not happen on
    // every iteration here (Dawn/lavapipe gave c = 1 the c = 0 sums as well).
    for (var i = 0u; i < 4u; i++) { lo[i] = vec4<f32>(0.0); }
    for (var q = 0u; q < RV; q++) {
      let r = 4u * q;
      var bq: array<vec4<f32>, 4>;
      for (var j = 0u; j < 4u; j++) {
        bq[j] = vec4<f32>(
          select(0.0, fB[brow[j] + min(r, p.R - 1u)], r < p.R),
          select(0.0, fB[brow[j] + min(r + 1u, p.R - 1u)], r + 1u < p.R),
          select(0.0, fB[brow[j] + min(r + 2u, p.R - 1u)], r + 2u < p.R),
          select(0.0, fB[brow[j] + min(r + 3u, p.R - 1u)], r + 3u < p.R));
      }
      for (var i = 0u; i < 4u; i++) {
        let uv = sh[(4u * ty + i) * RV + q];
        lo[i] += vec4<f32>(dot(uv, bq[0]), dot(uv, bq[1]), dot(uv, bq[2]), dot(uv, bq[3]));
      }
    }
    for (var i = 0u; i < 4u; i++) {
      let m = m0 + 4u * ty + i;
      if (m >= p.M) { break; }
      let v = acc[2u * i + c] + bias + p.scale * lo[i];
      let yb = m * p.N;
      for (var j = 0u; j < 4u; j++) {
        if (nb + j < p.N) { fy[yb + nb + j] = v[j]; }
      }
    }
  }
}
