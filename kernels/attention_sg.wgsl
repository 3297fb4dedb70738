enable subgroups;

// Attention family, subgroup entry point (composed after attention.wgsl, whose Params, bindings, DV, VT, hsum,
// KB and key_count it uses).
//
// forward_sg (lavapipe): `forward` with QPT = 1 and the key tile spread over the subgroup. In `forward` every
// lane loads the same K/V rows (uniform addresses, which lavapipe 25.0 still scalarises per lane); here lane
// l loads row j0 + l of the tile of KB = 8 keys (one lane-varying load per VT) and every lane takes key u's
// values with subgroupShuffle(·, u): 8× fewer loads. The 8 lanes of a subgroup must hold query rows of one
// (b, h): the host uses it with subgroups of exactly 8, Lq % 8 == 0 and no causal mask.
@compute @workgroup_size(WG)
fn forward_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
              @builtin(subgroup_invocation_id) sl: u32) {
  let r = linear_id(wg, nwg, lid);
  let total = p.B * p.H * p.Lq;
  let live = r < total; // dead lanes still take part in the shuffles
  let rr = min(r, total - 1u);
  let i = rr % p.Lq;
  let bh = rr / p.Lq;
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
  // The key loop's bound must be uniform for the shuffles: all keys (the host runs causal masks on `forward`).
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
