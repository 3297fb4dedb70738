enable subgroups;

// Attention family, subgroup entry points (composed after attention.wgsl, whose Params, bindings, DV, VT, hsum,
// KB and key_count they use). Lavapipe 25.0 scalarises a load whose address is the same in every lane, so the
// plain kernels, where each lane walks the same key (or query) rows, load every row 8 times. Here lane l loads
// row j0 + l of a tile of KB = 8 rows (one lane-varying load per VT) and every lane takes row u's values with
// subgroupShuffle(·, u): 8× fewer loads.
//
// The 8 lanes of a subgroup must work on one (b, h): rows are laid out per (b, h) padded to a multiple of 8
// (pad8), so ragged lengths (77 tokens) work; padding lanes compute on a clamped row and write nothing. Loop
// bounds must be uniform for the shuffles: the loops run over every row and a causal mask is applied per lane.
// The host uses these with subgroups of exactly 8 lanes (src/tensor/plan/variants.ts).
//   forward_sg    `forward` with QPT = 1: query rows in lanes, key tiles shuffled
//   bwd_dq_sg     `bwd_dq`: query rows in lanes, key/value tiles shuffled
//   bwd_dkdv_sg   `bwd_dkdv`: key rows in lanes, query/dO/LSE/Δ tiles shuffled; the same chunks (split) as bwd_dkdv

fn pad8(n: u32) -> u32 { return (n + 7u) & ~7u; }

@compute @workgroup_size(WG)
fn forward_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
              @builtin(subgroup_invocation_id) sl: u32) {
  let r = linear_id(wg, nwg, lid);
  let lq8 = pad8(p.Lq);
  let bh = min(r / lq8, p.B * p.H - 1u);
  let i = min(r % lq8, p.Lq - 1u);
  let live = r < p.B * p.H * lq8 && r % lq8 < p.Lq; // dead lanes still take part in the shuffles
  let h = bh % p.H;
  let b = bh / p.H;
  let kb = b * p.Lk * p.C + h * DV;
  let qo = (b * p.Lq + i) * p.C + h * DV;
  var q: array<VT, DV>;
  var acc: array<VT, DV>;
  for (var t = 0u; t < DV; t++) {
    q[t] = fq[qo + t] * p.scale;
    acc[t] = VT(0.0);
  }
  var m = NEG_BIG;
  var l = 0.0;
  let nki = key_count(i);
  // The key loop's bound is uniform (all keys); a causal mask is the per-lane key count.
  for (var j0 = 0u; j0 < p.Lk; j0 += KB) {
    let mine = kb + min(j0 + sl, p.Lk - 1u) * p.C; // this lane's key row of the tile
    var s: array<f32, KB>;
    for (var u = 0u; u < KB; u++) { s[u] = 0.0; }
    for (var t = 0u; t < DV; t++) {
      let kt = fk[mine + t];
      for (var u = 0u; u < KB; u++) { s[u] += hsum(q[t] * subgroupShuffle(kt, u)); }
    }
    var bm = NEG_BIG;
    for (var u = 0u; u < KB; u++) {
      s[u] = select(NEG_BIG, s[u], j0 + u < nki);
      bm = max(bm, s[u]);
    }
    let mn = max(m, bm);
    let c = exp(m - mn);
    l *= c;
    for (var u = 0u; u < KB; u++) {
      s[u] = exp(s[u] - mn);
      l += s[u];
    }
    m = mn;
    for (var t = 0u; t < DV; t++) {
      let vt = fv[mine + t];
      var a = acc[t] * c;
      for (var u = 0u; u < KB; u++) { a += s[u] * subgroupShuffle(vt, u); }
      acc[t] = a;
    }
  }
  if (live) {
    let inv = 1.0 / l;
    for (var t = 0u; t < DV; t++) { fo[qo + t] = acc[t] * inv; }
    flse[bh * p.Lq + i] = m + log(l);
  }
}

// dq_i = scale · Σ_j P_ij (dO_i·v_j − Δ_i) k_j, as bwd_dq (its bindings).
@compute @workgroup_size(WG)
fn bwd_dq_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
             @builtin(subgroup_invocation_id) sl: u32) {
  let r = linear_id(wg, nwg, lid);
  let lq8 = pad8(p.Lq);
  let bh = min(r / lq8, p.B * p.H - 1u);
  let i = min(r % lq8, p.Lq - 1u);
  let live = r < p.B * p.H * lq8 && r % lq8 < p.Lq;
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
  let lse = qlse[bh * p.Lq + i];
  let delta = qdelta[bh * p.Lq + i];
  let nk = key_count(i);
  for (var j0 = 0u; j0 < p.Lk; j0 += KB) {
    let mine = kb + min(j0 + sl, p.Lk - 1u) * p.C;
    var s: array<f32, KB>;
    var dp: array<f32, KB>;
    for (var u = 0u; u < KB; u++) {
      s[u] = 0.0;
      dp[u] = 0.0;
    }
    for (var t = 0u; t < DV; t++) {
      let kt = qk[mine + t];
      let vt = qv[mine + t];
      for (var u = 0u; u < KB; u++) {
        s[u] += hsum(q[t] * subgroupShuffle(kt, u));
        dp[u] += hsum(g[t] * subgroupShuffle(vt, u));
      }
    }
    for (var u = 0u; u < KB; u++) { s[u] = select(0.0, exp(s[u] - lse) * (dp[u] - delta), j0 + u < nk); }
    for (var t = 0u; t < DV; t++) {
      let kt = qk[mine + t];
      var a = acc[t];
      for (var u = 0u; u < KB; u++) { a += s[u] * subgroupShuffle(kt, u); }
      acc[t] = a;
    }
  }
  if (live) {
    for (var t = 0u; t < DV; t++) { qdq[qo + t] = acc[t] * p.scale; }
  }
}

// dv_j = Σ_i P_ij dO_i ;  dk_j = scale · Σ_i P_ij (dO_i·v_j − Δ_i) q_i, as bwd_dkdv (its bindings and its query
// chunks: rows (c, b, h, j) with j padded to pad8(Lk), chunk c of the queries into slice c).
@compute @workgroup_size(WG)
fn bwd_dkdv_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
               @builtin(subgroup_invocation_id) sl: u32) {
  let rr = linear_id(wg, nwg, lid);
  let lk8 = pad8(p.Lk);
  let nbh = p.B * p.H;
  let cr = min(rr / lk8, nbh * p.split - 1u); // (c, b, h)
  let j = min(rr % lk8, p.Lk - 1u);
  let live = rr < nbh * p.split * lk8 && rr % lk8 < p.Lk;
  let cidx = cr / nbh;
  let bh = cr % nbh;
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
  let i0 = cidx * p.chunk;
  let i1 = min(p.Lq, i0 + p.chunk);
  // The trip count is the uniform chunk length (i0 is the same in every lane of a subgroup, but the uniformity
  // analysis cannot see it); rows past i1 are masked.
  for (var it = 0u; it < p.chunk; it += KB) {
    let ib = i0 + it;
    let mi = min(ib + sl, p.Lq - 1u); // this lane's query row of the tile
    let mine = qb + mi * p.C;
    let lse_l = klse[bh * p.Lq + mi];
    let delta_l = kdelta[bh * p.Lq + mi];
    var s: array<f32, KB>;
    var dp: array<f32, KB>;
    for (var u = 0u; u < KB; u++) {
      s[u] = 0.0;
      dp[u] = 0.0;
    }
    for (var t = 0u; t < DV; t++) {
      let qt = kq[mine + t];
      let gt = kdo[mine + t];
      for (var u = 0u; u < KB; u++) {
        s[u] += hsum(k[t] * subgroupShuffle(qt, u));
        dp[u] += hsum(v[t] * subgroupShuffle(gt, u));
      }
    }
    var pij: array<f32, KB>;
    for (var u = 0u; u < KB; u++) {
      let i = ib + u;
      let on = i < i1 && (!CAUSAL || i >= j);
      pij[u] = select(0.0, exp(s[u] - subgroupShuffle(lse_l, u)), on);
      s[u] = pij[u] * (dp[u] - subgroupShuffle(delta_l, u)); // ds
    }
    for (var t = 0u; t < DV; t++) {
      let qt = kq[mine + t];
      let gt = kdo[mine + t];
      var a = dv[t];
      var c = dk[t];
      for (var u = 0u; u < KB; u++) {
        a += pij[u] * subgroupShuffle(gt, u);
        c += s[u] * subgroupShuffle(qt, u);
      }
      dv[t] = a;
      dk[t] = c;
    }
  }
  if (live) {
    for (var t = 0u; t < DV; t++) {
      kdk[oo + t] = dk[t] * p.scale;
      kdv[oo + t] = dv[t];
    }
  }
}
