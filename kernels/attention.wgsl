// Multi-head scaled dot-product attention, flash style: online softmax over key tiles, so the
// Lq×Lk score matrix never exists. Heads are laid out as after to_q/to_k/to_v in diffusers and
// transformers: q [B, Lq, H·D], k/v [B, Lk, H·D], channel = h·D + j; head slices are indexed in
// place (no permute copies).
//
// One invocation per (b, h, query row) with a serial loop over keys: no barriers (lavapipe), and
// neighbouring invocations share (b, h), so the K/V loads are the same address across a
// subgroup (a broadcast on GPUs, a uniform load on llvmpipe).
//
// The head dimension is a module constant, not an override: private arrays cannot be sized by an
// override. The host generates `const DV: u32` and `const QPT: u32` (src/gpu/wgsl.ts `consts`) and
// composes kernels/lib/rows_vec4.wgsl or rows_f32.wgsl in front, which define the row element type VT
// and hsum() (folds a VT into a scalar): DV = D / 4 vec4s when D % 4 == 0 (vec4 loads), else D floats.
// C below is in units of VT too. QPT: query rows per forward invocation (see `forward`).
//
// Entry points:
//   forward   : O, and LSE = m + log l per (b, h, i) in scaled-score units
//   bwd_delta : Δ[b,h,i] = Σ_j dO·O (FlashAttention-2's D)
//   bwd_dq    : dq (one invocation per query row, loop over keys)
//   bwd_dkdv  : dk, dv (one invocation per key row and query chunk, loop over queries): no atomics
//   bwd_dkdv_sum: adds the per-chunk dk/dv slices when the queries were split (deterministic)

const KB: u32 = 8u; // keys per online-softmax tile
const NEG_BIG: f32 = -3.0e38;

override WG: u32 = 64u;
override CAUSAL: bool = false;

struct Params {
  B: u32,
  H: u32,
  Lq: u32,
  Lk: u32,
  C: u32,       // H·DV, the row stride of q, k, v, o in VT units
  scale: f32,
  split: u32,   // bwd_dkdv: the queries are cut into `split` chunks of `chunk` rows
  chunk: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Number of keys a query row attends to (causal: top-left aligned, key j ≤ query i, as torch's is_causal).
fn key_count(i: u32) -> u32 {
  if (CAUSAL) { return min(p.Lk, i + 1u); }
  return p.Lk;
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> fq: array<VT>;
@group(0) @binding(2) var<storage, read> fk: array<VT>;
@group(0) @binding(3) var<storage, read> fv: array<VT>;
@group(0) @binding(4) var<storage, read_write> fo: array<VT>;
@group(0) @binding(5) var<storage, read_write> flse: array<f32>;

// QPT consecutive query rows of one (b, h) per invocation: each K/V element loaded is used QPT
// times (register blocking). The host uses QPT = 1 by default: on an H200 more rows per invocation
// were slower (register pressure), and lavapipe has fewer registers still.
@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = linear_id(wg, nwg, lid);
  let nq = (p.Lq + QPT - 1u) / QPT;
  if (r >= p.B * p.H * nq) { return; }
  let iq = (r % nq) * QPT;
  let bh = r / nq;
  let h = bh % p.H;
  let b = bh / p.H;
  let kb = b * p.Lk * p.C + h * DV;

  var q: array<VT, QPT * DV>;
  var acc: array<VT, QPT * DV>;
  var m: array<f32, QPT>;
  var l: array<f32, QPT>;
  var nkw: array<u32, QPT>;
  var nk = 0u;
  for (var w = 0u; w < QPT; w++) {
    let i = min(iq + w, p.Lq - 1u); // rows past the end repeat the last one and are not written
    let qo = (b * p.Lq + i) * p.C + h * DV;
    for (var t = 0u; t < DV; t++) {
      q[w * DV + t] = fq[qo + t] * p.scale;
      acc[w * DV + t] = VT(0.0);
    }
    m[w] = NEG_BIG;
    l[w] = 0.0;
    nkw[w] = key_count(i);
    nk = max(nk, nkw[w]);
  }
  var s: array<f32, QPT * KB>;
  // Tiles of KB keys with constant trip counts (so s[] stays in registers); keys past the end of
  // a row are masked to a score of NEG_BIG (weight 0) and read a valid key row instead.
  for (var j0 = 0u; j0 < nk; j0 += KB) {
    for (var u = 0u; u < KB; u++) {
      let ko = kb + min(j0 + u, nk - 1u) * p.C;
      var dd: array<VT, QPT>;
      for (var w = 0u; w < QPT; w++) { dd[w] = VT(0.0); }
      for (var t = 0u; t < DV; t++) {
        let kt = fk[ko + t];
        for (var w = 0u; w < QPT; w++) { dd[w] += q[w * DV + t] * kt; }
      }
      for (var w = 0u; w < QPT; w++) { s[w * KB + u] = select(NEG_BIG, hsum(dd[w]), j0 + u < nkw[w]); }
    }
    for (var w = 0u; w < QPT; w++) {
      var bm = NEG_BIG;
      for (var u = 0u; u < KB; u++) { bm = max(bm, s[w * KB + u]); }
      let mn = max(m[w], bm);
      let c = exp(m[w] - mn); // 0 on the first tile
      var lw = l[w] * c;
      for (var u = 0u; u < KB; u++) {
        let e = exp(s[w * KB + u] - mn);
        s[w * KB + u] = e;
        lw += e;
      }
      l[w] = lw;
      m[w] = mn;
      for (var t = 0u; t < DV; t++) { acc[w * DV + t] *= c; }
    }
    for (var u = 0u; u < KB; u++) {
      let vo = kb + min(j0 + u, nk - 1u) * p.C;
      for (var t = 0u; t < DV; t++) {
        let vt = fv[vo + t];
        for (var w = 0u; w < QPT; w++) { acc[w * DV + t] += s[w * KB + u] * vt; }
      }
    }
  }
  for (var w = 0u; w < QPT; w++) {
    let i = iq + w;
    if (i < p.Lq) {
      let qo = (b * p.Lq + i) * p.C + h * DV;
      let inv = 1.0 / l[w];
      for (var t = 0u; t < DV; t++) { fo[qo + t] = acc[w * DV + t] * inv; }
      flse[bh * p.Lq + i] = m[w] + log(l[w]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> ddo: array<VT>;
@group(0) @binding(2) var<storage, read> dout: array<VT>;
@group(0) @binding(3) var<storage, read_write> ddelta: array<f32>;

@compute @workgroup_size(WG)
fn bwd_delta(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = linear_id(wg, nwg, lid);
  if (r >= p.B * p.H * p.Lq) { return; }
  let i = r % p.Lq;
  let bh = r / p.Lq;
  let h = bh % p.H;
  let b = bh / p.H;
  let qo = (b * p.Lq + i) * p.C + h * DV;
  var s = VT(0.0);
  for (var t = 0u; t < DV; t++) { s += ddo[qo + t] * dout[qo + t]; }
  ddelta[r] = hsum(s);
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> qq: array<VT>;
@group(0) @binding(2) var<storage, read> qk: array<VT>;
@group(0) @binding(3) var<storage, read> qv: array<VT>;
@group(0) @binding(4) var<storage, read> qdo: array<VT>;
@group(0) @binding(5) var<storage, read> qlse: array<f32>;
@group(0) @binding(6) var<storage, read> qdelta: array<f32>;
@group(0) @binding(7) var<storage, read_write> qdq: array<VT>;

// dq_i = scale · Σ_j P_ij (dO_i·v_j − Δ_i) k_j
@compute @workgroup_size(WG)
fn bwd_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = linear_id(wg, nwg, lid);
  if (r >= p.B * p.H * p.Lq) { return; }
  let i = r % p.Lq;
  let bh = r / p.Lq;
  let h = bh % p.H;
  let b = bh / p.H;
  let qo = (b * p.Lq + i) * p.C + h * DV;
  let kb = b * p.Lk * p.C + h * DV;
  var q: array<VT, DV>;
  var g: array<VT, DV>;
  var acc: array<VT, DV>;
  for (var t = 0u; t < DV; t++) {
    q[t] = qq[qo + t] * p.scale;
    g[t] = qdo[qo + t];
    acc[t] = VT(0.0);
  }
  let lse = qlse[r];
  let delta = qdelta[r];
  let nk = key_count(i);
  for (var j = 0u; j < nk; j++) {
    let ko = kb + j * p.C;
    var sdv = VT(0.0);
    var dpv = VT(0.0);
    for (var t = 0u; t < DV; t++) {
      sdv += q[t] * qk[ko + t];
      dpv += g[t] * qv[ko + t];
    }
    let ds = exp(hsum(sdv) - lse) * (hsum(dpv) - delta);
    for (var t = 0u; t < DV; t++) { acc[t] += ds * qk[ko + t]; }
  }
  for (var t = 0u; t < DV; t++) { qdq[qo + t] = acc[t] * p.scale; }
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> kq: array<VT>;
@group(0) @binding(2) var<storage, read> kk: array<VT>;
@group(0) @binding(3) var<storage, read> kv: array<VT>;
@group(0) @binding(4) var<storage, read> kdo: array<VT>;
@group(0) @binding(5) var<storage, read> klse: array<f32>;
@group(0) @binding(6) var<storage, read> kdelta: array<f32>;
@group(0) @binding(7) var<storage, read_write> kdk: array<VT>;
@group(0) @binding(8) var<storage, read_write> kdv: array<VT>;

// dv_j = Σ_i P_ij dO_i ;  dk_j = scale · Σ_i P_ij (dO_i·v_j − Δ_i) q_i
// With split > 1 (few keys, many queries: cross-attention's 77 keys), invocation (c, b, h, j) sums
// query chunk c into slice c of dk/dv buffers [split, B, Lk, C]; bwd_dkdv_sum adds the slices.
@compute @workgroup_size(WG)
fn bwd_dkdv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let rr = linear_id(wg, nwg, lid);
  let nrows = p.B * p.H * p.Lk;
  if (rr >= nrows * p.split) { return; }
  let cidx = rr / nrows;
  let r = rr % nrows;
  let j = r % p.Lk;
  let bh = r / p.Lk;
  let h = bh % p.H;
  let b = bh / p.H;
  let ko = (b * p.Lk + j) * p.C + h * DV;
  let oo = cidx * p.B * p.Lk * p.C + ko;
  let qb = b * p.Lq * p.C + h * DV;
  var k: array<VT, DV>;
  var v: array<VT, DV>;
  var dk: array<VT, DV>;
  var dv: array<VT, DV>;
  for (var t = 0u; t < DV; t++) {
    k[t] = kk[ko + t] * p.scale;
    v[t] = kv[ko + t];
    dk[t] = VT(0.0);
    dv[t] = VT(0.0);
  }
  var i0 = cidx * p.chunk;
  let i1 = min(p.Lq, i0 + p.chunk);
  if (CAUSAL) { i0 = max(i0, j); }
  for (var i = i0; i < i1; i++) {
    let qo = qb + i * p.C;
    let ri = bh * p.Lq + i;
    var sdv = VT(0.0);
    var dpv = VT(0.0);
    for (var t = 0u; t < DV; t++) {
      sdv += k[t] * kq[qo + t];
      dpv += v[t] * kdo[qo + t];
    }
    let pij = exp(hsum(sdv) - klse[ri]);
    let ds = pij * (hsum(dpv) - kdelta[ri]);
    for (var t = 0u; t < DV; t++) {
      dv[t] += pij * kdo[qo + t];
      dk[t] += ds * kq[qo + t];
    }
  }
  for (var t = 0u; t < DV; t++) {
    kdk[oo + t] = dk[t] * p.scale;
    kdv[oo + t] = dv[t];
  }
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> sdk: array<VT>;
@group(0) @binding(2) var<storage, read> sdv: array<VT>;
@group(0) @binding(3) var<storage, read_write> odk: array<VT>;
@group(0) @binding(4) var<storage, read_write> odv: array<VT>;

// dk = Σ_c dk_part[c], dv likewise (fixed order: deterministic).
@compute @workgroup_size(WG)
fn bwd_dkdv_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let e = linear_id(wg, nwg, lid);
  let n = p.B * p.Lk * p.C;
  if (e >= n) { return; }
  var a = VT(0.0);
  var c = VT(0.0);
  for (var k = 0u; k < p.split; k++) {
    a += sdk[k * n + e];
    c += sdv[k * n + e];
  }
  odk[e] = a;
  odv[e] = c;
}
