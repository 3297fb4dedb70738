enable subgroups;

// Multi-head attention, flash style, on fragments: QKᵀ and PV (in the backward also dO·Vᵀ, dS·K, Pᵀ·dO
// and dSᵀ·Q) are fragment products with f16 operands and f32 accumulation (tensor cores with
// frag_sm.wgsl); the online softmax and everything per row is f32. Same layout, LSE and backward split
// as kernels/attention.wgsl: q [B, Lq, H·D], k/v [B, Lk, H·D], channel h·D + j; LSE in scaled-score
// units; dq by query blocks, dk/dv by key blocks (and query chunks), no atomics.
//
// Host consts (src/tensor/plan/attn16.ts): the fragment FM FN FK and SG; WM warps per workgroup, each
// owning FM rows of the workgroup's block (queries in `forward`/`bwd_dq`, keys in `bwd_dkdv`); BK the
// other side's block (keys; queries in `bwd_dkdv`); DP the head dim padded to whole fragments (zeros
// beyond D). TM, TN are unused. Types: TQ (q, k, v), TG (dO), TY (the forward's O, read by bwd_delta),
// TO (outputs), FT (staging, f16).
//
// Per-row f32 work goes to the warp's lanes: lane l takes rows l, l + SG, … (RPL rows). Fragment calls
// sit in uniform control flow (loops bounded by params, workgroup ids and consts); masking (keys past
// Lk, queries past Lq, causal) happens in the lanes' f32 work.

const PAD: u32 = 8u;
const RB: u32 = WM * FM;                // rows of the workgroup's own block
const DS: u32 = DP + PAD;               // staged row stride of q, k, v, dO (f16)
const KS: u32 = BK + PAD;               // staged row stride of P and dS (f16)
const SW: u32 = max(BK, DP);            // row stride of a warp's f32 regions
const WG: u32 = WM * SG;
const RPL: u32 = (FM + SG - 1u) / SG;   // rows per lane
const NQ: u32 = DP / FK;                // fragments along d as k
const ND: u32 = DP / FN;                // fragments along d as n
const NEG_BIG: f32 = -3.0e38;
// sh: own block (RB rows) and a second own block, two other-side blocks (BK rows), two per-warp
// [FM][KS] tiles. sf: two per-warp [FM][SW] regions, then lse and Δ of an other-side block.
const SH_OWN2: u32 = RB * DS;
const SH_OTHER: u32 = 2u * RB * DS;
const SH_OTHER2: u32 = SH_OTHER + BK * DS;
const SH_TILE: u32 = SH_OTHER + 2u * BK * DS;
const SF_STAT: u32 = WM * 2u * FM * SW;

override CAUSAL: bool = false;

struct Params {
  B: u32, H: u32, Lq: u32, Lk: u32,
  C: u32,       // H·D, the row stride of q, k, v, o
  D: u32,
  scale: f32,
  split: u32,   // bwd_dkdv: the queries are cut into `split` chunks of `chunk` rows
  chunk: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> sh: array<FT, SH_TILE + 2u * RB * KS>;
var<workgroup> sf: array<f32, SF_STAT + 2u * BK>;

// Stages rows r0 .. r0 + rows of head h of batch b from a [B, L, C] tensor at sh[off] ([rows][DS]),
// zeros past row `lim` and past D.
fn stage_q(src: ptr<storage, array<TQ>, read>, off: u32, lid: u32, b: u32, h: u32, r0: u32, rows: u32, L: u32, lim: u32) {
  for (var e = lid; e < rows * DP; e += WG) {
    let r = e / DP;
    let d = e % DP;
    var v = 0.0;
    if (r0 + r < lim && d < p.D) { v = f32((*src)[(b * L + r0 + r) * p.C + h * p.D + d]); }
    sh[off + r * DS + d] = FT(narrow(v, FT_F16));
  }
}

fn stage_g(src: ptr<storage, array<TG>, read>, off: u32, lid: u32, b: u32, h: u32, r0: u32, rows: u32, L: u32, lim: u32) {
  for (var e = lid; e < rows * DP; e += WG) {
    let r = e / DP;
    let d = e % DP;
    var v = 0.0;
    if (r0 + r < lim && d < p.D) { v = f32((*src)[(b * L + r0 + r) * p.C + h * p.D + d]); }
    sh[off + r * DS + d] = FT(narrow(v, FT_F16));
  }
}

// Number of keys a query row attends to (causal: top-left aligned, key j ≤ query i).
fn key_count(i: u32) -> u32 {
  if (CAUSAL) { return min(p.Lk, i + 1u); }
  return p.Lk;
}

// ------------------------------------------------------------------------------------- forward
@group(0) @binding(1) var<storage, read> fq: array<TQ>;
@group(0) @binding(2) var<storage, read> fk: array<TQ>;
@group(0) @binding(3) var<storage, read> fv: array<TQ>;
@group(0) @binding(4) var<storage, read_write> fo: array<TO>;
@group(0) @binding(5) var<storage, read_write> flse: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
           @builtin(subgroup_id) sgid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let warp = frag_warp(lid, sgid);
  let lane = frag_lane(sl);
  let bh = wg.y;
  let b = bh / p.H;
  let h = bh % p.H;
  let q0 = wg.x * RB;
  let so = warp * 2u * FM * SW;         // this warp's f32 region (scores, then P·V)
  let po = SH_TILE + warp * FM * KS;    // this warp's P tile
  stage_q(&fq, 0u, lid, b, h, q0, RB, p.Lq, p.Lq);
  workgroupBarrier();
  var fa: array<FragA, NQ>;
  for (var t = 0u; t < NQ; t++) { fa[t] = frag_a(warp * FM * DS + t * FK, DS); }
  var o: array<f32, RPL * DP>;
  var m: array<f32, RPL>;
  var l: array<f32, RPL>;
  for (var r = 0u; r < RPL; r++) { m[r] = NEG_BIG; l[r] = 0.0; }
  let nk = select(p.Lk, min(p.Lk, q0 + RB), CAUSAL);
  for (var kb = 0u; kb < nk; kb += BK) {
    stage_q(&fk, SH_OTHER, lid, b, h, kb, BK, p.Lk, p.Lk);
    stage_q(&fv, SH_OTHER2, lid, b, h, kb, BK, p.Lk, p.Lk);
    workgroupBarrier();
    for (var j = 0u; j < BK / FN; j++) {
      var acc = frag_zero();
      for (var t = 0u; t < NQ; t++) { acc = frag_mma(fa[t], frag_b_t(SH_OTHER + j * FN * DS + t * FK, DS), acc); }
      frag_store(so + j * FN, acc, SW);
    }
    workgroupBarrier();
    // Online softmax of the warp's rows (f32); P (f16) to the warp's tile; O rescaled.
    for (var r = 0u; r < RPL; r++) {
      let row = lane + r * SG;
      if (row < FM) {
        let nki = key_count(q0 + warp * FM + row);
        var bm = NEG_BIG;
        for (var j = 0u; j < BK; j++) {
          if (kb + j < nki) { bm = max(bm, sf[so + row * SW + j] * p.scale); }
        }
        let mn = max(m[r], bm);
        let c = exp(m[r] - mn);
        var ls = l[r] * c;
        for (var j = 0u; j < BK; j++) {
          let e = select(0.0, exp(sf[so + row * SW + j] * p.scale - mn), kb + j < nki);
          ls += e;
          sh[po + row * KS + j] = FT(e);
        }
        l[r] = ls;
        m[r] = mn;
        for (var d = 0u; d < DP; d++) { o[r * DP + d] *= c; }
      }
    }
    workgroupBarrier();
    for (var j = 0u; j < ND; j++) {
      var acc = frag_zero();
      for (var t = 0u; t < BK / FK; t++) { acc = frag_mma(frag_a(po + t * FK, KS), frag_b(SH_OTHER2 + t * FK * DS + j * FN, DS), acc); }
      frag_store(so + j * FN, acc, SW);
    }
    workgroupBarrier();
    for (var r = 0u; r < RPL; r++) {
      let row = lane + r * SG;
      if (row < FM) {
        for (var d = 0u; d < DP; d++) { o[r * DP + d] += sf[so + row * SW + d]; }
      }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < RPL; r++) {
    let row = lane + r * SG;
    let i = q0 + warp * FM + row;
    if (row < FM && i < p.Lq) {
      let inv = 1.0 / l[r];
      for (var d = 0u; d < p.D; d++) { fo[(b * p.Lq + i) * p.C + h * p.D + d] = TO(narrow(o[r * DP + d] * inv, TO_F16)); }
      flse[bh * p.Lq + i] = m[r] + log(l[r]);
    }
  }
}

// ------------------------------------------------------------------------------------- bwd_delta
@group(0) @binding(1) var<storage, read> ddo: array<TG>;
@group(0) @binding(2) var<storage, read> dout: array<TY>;
@group(0) @binding(3) var<storage, read_write> ddelta: array<f32>;

// Δ[b, h, i] = Σ_d dO·O (FlashAttention-2's D), one invocation per row.
@compute @workgroup_size(WG)
fn bwd_delta(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = linear_id(wg, nwg, lid);
  if (r >= p.B * p.H * p.Lq) { return; }
  let i = r % p.Lq;
  let bh = r / p.Lq;
  let o = (bh / p.H * p.Lq + i) * p.C + (bh % p.H) * p.D;
  var s = 0.0;
  for (var d = 0u; d < p.D; d++) { s += f32(ddo[o + d]) * f32(dout[o + d]); }
  ddelta[r] = s;
}

// ------------------------------------------------------------------------------------- bwd_dq
@group(0) @binding(1) var<storage, read> qq: array<TQ>;
@group(0) @binding(2) var<storage, read> qk: array<TQ>;
@group(0) @binding(3) var<storage, read> qv: array<TQ>;
@group(0) @binding(4) var<storage, read> qdo: array<TG>;
@group(0) @binding(5) var<storage, read> qlse: array<f32>;
@group(0) @binding(6) var<storage, read> qdelta: array<f32>;
@group(0) @binding(7) var<storage, read_write> qdq: array<TO>;

// dq_i = scale · Σ_j P_ij (dO_i·v_j − Δ_i) k_j over key blocks; the sums stay in fragments.
@compute @workgroup_size(WG)
fn bwd_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
          @builtin(subgroup_id) sgid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let warp = frag_warp(lid, sgid);
  let lane = frag_lane(sl);
  let bh = wg.y;
  let b = bh / p.H;
  let h = bh % p.H;
  let q0 = wg.x * RB;
  let so = warp * 2u * FM * SW;
  let dso = SH_TILE + warp * FM * KS;
  stage_q(&qq, 0u, lid, b, h, q0, RB, p.Lq, p.Lq);
  stage_g(&qdo, SH_OWN2, lid, b, h, q0, RB, p.Lq, p.Lq);
  workgroupBarrier();
  var fa: array<FragA, NQ>;
  var fg: array<FragA, NQ>;
  for (var t = 0u; t < NQ; t++) {
    fa[t] = frag_a(warp * FM * DS + t * FK, DS);
    fg[t] = frag_a(SH_OWN2 + warp * FM * DS + t * FK, DS);
  }
  var dq: array<FragC, ND>;
  for (var j = 0u; j < ND; j++) { dq[j] = frag_zero(); }
  var lse: array<f32, RPL>;
  var dl: array<f32, RPL>;
  for (var r = 0u; r < RPL; r++) {
    let i = min(q0 + warp * FM + lane + r * SG, p.Lq - 1u);
    lse[r] = qlse[bh * p.Lq + i];
    dl[r] = qdelta[bh * p.Lq + i];
  }
  let nk = select(p.Lk, min(p.Lk, q0 + RB), CAUSAL);
  for (var kb = 0u; kb < nk; kb += BK) {
    stage_q(&qk, SH_OTHER, lid, b, h, kb, BK, p.Lk, p.Lk);
    stage_q(&qv, SH_OTHER2, lid, b, h, kb, BK, p.Lk, p.Lk);
    workgroupBarrier();
    for (var j = 0u; j < BK / FN; j++) {
      var s = frag_zero();
      var g = frag_zero();
      for (var t = 0u; t < NQ; t++) {
        s = frag_mma(fa[t], frag_b_t(SH_OTHER + j * FN * DS + t * FK, DS), s);
        g = frag_mma(fg[t], frag_b_t(SH_OTHER2 + j * FN * DS + t * FK, DS), g);
      }
      frag_store(so + j * FN, s, SW);
      frag_store(so + FM * SW + j * FN, g, SW);
    }
    workgroupBarrier();
    for (var r = 0u; r < RPL; r++) {
      let row = lane + r * SG;
      if (row < FM) {
        let i = q0 + warp * FM + row;
        let nki = key_count(i);
        for (var j = 0u; j < BK; j++) {
          let pij = exp(sf[so + row * SW + j] * p.scale - lse[r]);
          let ds = pij * (sf[so + FM * SW + row * SW + j] - dl[r]);
          sh[dso + row * KS + j] = FT(narrow(select(0.0, ds, i < p.Lq && kb + j < nki), FT_F16));
        }
      }
    }
    workgroupBarrier();
    for (var j = 0u; j < ND; j++) {
      for (var t = 0u; t < BK / FK; t++) { dq[j] = frag_mma(frag_a(dso + t * FK, KS), frag_b(SH_OTHER + t * FK * DS + j * FN, DS), dq[j]); }
    }
    workgroupBarrier();
  }
  for (var j = 0u; j < ND; j++) { frag_store(so + j * FN, dq[j], SW); }
  workgroupBarrier();
  for (var r = 0u; r < RPL; r++) {
    let row = lane + r * SG;
    let i = q0 + warp * FM + row;
    if (row < FM && i < p.Lq) {
      for (var d = 0u; d < p.D; d++) { qdq[(b * p.Lq + i) * p.C + h * p.D + d] = TO(narrow(sf[so + row * SW + d] * p.scale, TO_F16)); }
    }
  }
}

// ------------------------------------------------------------------------------------- bwd_dkdv
@group(0) @binding(1) var<storage, read> kq: array<TQ>;
@group(0) @binding(2) var<storage, read> kk: array<TQ>;
@group(0) @binding(3) var<storage, read> kv: array<TQ>;
@group(0) @binding(4) var<storage, read> kdo: array<TG>;
@group(0) @binding(5) var<storage, read> klse: array<f32>;
@group(0) @binding(6) var<storage, read> kdelta: array<f32>;
@group(0) @binding(7) var<storage, read_write> kdk: array<TO>;
@group(0) @binding(8) var<storage, read_write> kdv: array<TO>;

// dv_j = Σ_i P_ij dO_i ; dk_j = scale · Σ_i P_ij (dO_i·v_j − Δ_i) q_i, for the workgroup's key block over
// query chunk wg.z; with split > 1 the chunk's sums go to slice wg.z of [split, B, Lk, C] (TO = f32)
// and bwd_dkdv_sum adds the slices.
@compute @workgroup_size(WG)
fn bwd_dkdv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
            @builtin(subgroup_id) sgid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let warp = frag_warp(lid, sgid);
  let lane = frag_lane(sl);
  let bh = wg.y;
  let b = bh / p.H;
  let h = bh % p.H;
  let k0 = wg.x * RB;
  let so = warp * 2u * FM * SW;
  let po = SH_TILE + warp * FM * KS;
  let dso = SH_TILE + RB * KS + warp * FM * KS;
  stage_q(&kk, 0u, lid, b, h, k0, RB, p.Lk, p.Lk);
  stage_q(&kv, SH_OWN2, lid, b, h, k0, RB, p.Lk, p.Lk);
  workgroupBarrier();
  var ak: array<FragA, NQ>;
  var av: array<FragA, NQ>;
  for (var t = 0u; t < NQ; t++) {
    ak[t] = frag_a(warp * FM * DS + t * FK, DS);
    av[t] = frag_a(SH_OWN2 + warp * FM * DS + t * FK, DS);
  }
  var dk: array<FragC, ND>;
  var dv: array<FragC, ND>;
  for (var j = 0u; j < ND; j++) { dk[j] = frag_zero(); dv[j] = frag_zero(); }
  let i1 = min(p.Lq, (wg.z + 1u) * p.chunk);
  // Causal: queries before the block's first key weigh none of its keys.
  let i0 = select(wg.z * p.chunk, max(wg.z * p.chunk, k0), CAUSAL);
  for (var qb = i0; qb < i1; qb += BK) {
    stage_q(&kq, SH_OTHER, lid, b, h, qb, BK, p.Lq, i1);
    stage_g(&kdo, SH_OTHER2, lid, b, h, qb, BK, p.Lq, i1);
    for (var e = lid; e < BK; e += WG) {
      let i = min(qb + e, p.Lq - 1u);
      sf[SF_STAT + e] = klse[bh * p.Lq + i];
      sf[SF_STAT + BK + e] = kdelta[bh * p.Lq + i];
    }
    workgroupBarrier();
    for (var j = 0u; j < BK / FN; j++) {
      var s = frag_zero();
      var g = frag_zero();
      for (var t = 0u; t < NQ; t++) {
        s = frag_mma(ak[t], frag_b_t(SH_OTHER + j * FN * DS + t * FK, DS), s);
        g = frag_mma(av[t], frag_b_t(SH_OTHER2 + j * FN * DS + t * FK, DS), g);
      }
      frag_store(so + j * FN, s, SW);
      frag_store(so + FM * SW + j * FN, g, SW);
    }
    workgroupBarrier();
    for (var r = 0u; r < RPL; r++) {
      let row = lane + r * SG;
      if (row < FM) {
        let key = k0 + warp * FM + row;
        for (var q = 0u; q < BK; q++) {
          let i = qb + q;
          let ok = i < i1 && key < p.Lk && (!CAUSAL || key <= i);
          let pij = select(0.0, exp(sf[so + row * SW + q] * p.scale - sf[SF_STAT + q]), ok);
          let ds = pij * (sf[so + FM * SW + row * SW + q] - sf[SF_STAT + BK + q]);
          sh[po + row * KS + q] = FT(pij);
          sh[dso + row * KS + q] = FT(narrow(ds, FT_F16));
        }
      }
    }
    workgroupBarrier();
    for (var j = 0u; j < ND; j++) {
      for (var t = 0u; t < BK / FK; t++) {
        dv[j] = frag_mma(frag_a(po + t * FK, KS), frag_b(SH_OTHER2 + t * FK * DS + j * FN, DS), dv[j]);
        dk[j] = frag_mma(frag_a(dso + t * FK, KS), frag_b(SH_OTHER + t * FK * DS + j * FN, DS), dk[j]);
      }
    }
    workgroupBarrier();
  }
  for (var j = 0u; j < ND; j++) {
    frag_store(so + j * FN, dk[j], SW);
    frag_store(so + FM * SW + j * FN, dv[j], SW);
  }
  workgroupBarrier();
  let oo = wg.z * p.B * p.Lk * p.C;
  for (var r = 0u; r < RPL; r++) {
    let row = lane + r * SG;
    let key = k0 + warp * FM + row;
    if (row < FM && key < p.Lk) {
      let base = oo + (b * p.Lk + key) * p.C + h * p.D;
      for (var d = 0u; d < p.D; d++) {
        kdk[base + d] = TO(narrow(sf[so + row * SW + d] * p.scale, TO_F16));
        kdv[base + d] = TO(narrow(sf[so + FM * SW + row * SW + d], TO_F16));
      }
    }
  }
}

// ------------------------------------------------------------------------------------- bwd_dkdv_sum
@group(0) @binding(1) var<storage, read> sdk: array<f32>;
@group(0) @binding(2) var<storage, read> sdv: array<f32>;
@group(0) @binding(3) var<storage, read_write> odk: array<TO>;
@group(0) @binding(4) var<storage, read_write> odv: array<TO>;

// dk = Σ_c dk_part[c], dv likewise (fixed order: deterministic).
@compute @workgroup_size(WG)
fn bwd_dkdv_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let e = linear_id(wg, nwg, lid);
  let n = p.B * p.Lk * p.C;
  if (e >= n) { return; }
  var a = 0.0;
  var c = 0.0;
  for (var s = 0u; s < p.split; s++) {
    a += sdk[s * n + e];
    c += sdv[s * n + e];
  }
  odk[e] = TO(narrow(a, TO_F16));
  odv[e] = TO(narrow(c, TO_F16));
}
