enable subgroups;

// Conv2d family, subgroup entry points (composed after conv2d.wgsl, whose overrides, bindings and
// Params they use).
//
// *_sg (lavapipe with subgroups): like *_rb with 8 rows per lane, but lane l loads the row operand of
// row r0 + l%8 (4 k at a time) and every lane takes row i with subgroupBroadcast(…, i): one lane-varying
// load per 4 k and row instead of 8 uniform loads (which lavapipe scalarises per lane). Subgroup size ≥ 8.

fn fx_at(k: u32, xb: u32, iy0: i32, ix0: i32) -> f32 {
  let kk = KH * KW;
  let r = k % kk;
  let iy = iy0 + i32(r / KW);
  let ix = ix0 + i32(r % KW);
  let ok = k < p.k && iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
  return select(0.0, src0[select(0u, xb + ((k / kk) * p.h + u32(iy)) * p.w + u32(ix), ok)], ok);
}

fn fw_at(k: u32, wrow: u32) -> f32 {
  return select(0.0, src1[wrow + min(k, p.k - 1u)], k < p.k);
}

fn store8(r0: u32, live: bool, idx0: u32, rstride: u32, lo: vec4<f32>, hi: vec4<f32>) {
  if (!live) { return; }
  for (var i = 0u; i < 8u; i++) {
    let r = r0 + i;
    if (r < p.m) { dst[idx0 + r * rstride] = select(hi[i % 4u], lo[i % 4u], i < 4u) + bias_at(r); }
  }
}

@compute @workgroup_size(WG)
fn fwd_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let cx = wg.x + wg.z * nwg.x; // column tiles fold into x·z past 65,535
  let live = cx * WG + lid < p.ncols;
  let col = min(cx * WG + lid, p.ncols - 1u);
  let r0 = wg.y * 8u;
  let ohw = p.oh * p.ow;
  let n = col / ohw;
  let pix = col % ohw;
  let iy0 = i32((pix / p.ow) * SH) - i32(p.pad_t);
  let ix0 = i32((pix % p.ow) * SW) - i32(p.pad_l);
  let xb = n * p.c * p.h * p.w;
  let wrow = min(r0 + sl % 8u, p.m - 1u) * p.k;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  for (var k = 0u; k < p.k; k += 4u) {
    let av = vec4<f32>(fw_at(k, wrow), fw_at(k + 1u, wrow), fw_at(k + 2u, wrow), fw_at(k + 3u, wrow));
    let bv = vec4<f32>(fx_at(k, xb, iy0, ix0), fx_at(k + 1u, xb, iy0, ix0), fx_at(k + 2u, xb, iy0, ix0), fx_at(k + 3u, xb, iy0, ix0));
    lo.x += dot(subgroupBroadcast(av, 0u), bv);
    lo.y += dot(subgroupBroadcast(av, 1u), bv);
    lo.z += dot(subgroupBroadcast(av, 2u), bv);
    lo.w += dot(subgroupBroadcast(av, 3u), bv);
    hi.x += dot(subgroupBroadcast(av, 4u), bv);
    hi.y += dot(subgroupBroadcast(av, 5u), bv);
    hi.z += dot(subgroupBroadcast(av, 6u), bv);
    hi.w += dot(subgroupBroadcast(av, 7u), bv);
  }
  if (!live) { return; }
  for (var i = 0u; i < 8u; i++) {
    let r = r0 + i;
    let di = (n * p.o + r) * ohw + pix;
    if (r < p.m) { dst[di] = epi_fwd(select(hi[i % 4u], lo[i % 4u], i < 4u), r, n, di); }
  }
}

// dx: k = (o, ky, kx); row operand w[o, c, ky, kx] for c = row; column operand dy (stride-checked).
fn ddy_at(k: u32, db: u32, ty0: i32, tx0: i32) -> f32 {
  let kk = KH * KW;
  let r = k % kk;
  let ty = ty0 - i32(r / KW);
  let tx = tx0 - i32(r % KW);
  let oy = u32(max(ty, 0)) / SH;
  let ox = u32(max(tx, 0)) / SW;
  let ok = k < p.k && ty >= 0 && tx >= 0 && u32(ty) % SH == 0u && u32(tx) % SW == 0u && oy < p.oh && ox < p.ow;
  return select(0.0, src0[select(0u, db + ((k / kk) * p.oh + oy) * p.ow + ox, ok)], ok);
}

fn dw_at(k: u32, c: u32) -> f32 {
  let kk = KH * KW;
  let kc = min(k, p.k - 1u);
  return select(0.0, src1[((kc / kk) * p.c + c) * kk + kc % kk], k < p.k);
}

@compute @workgroup_size(WG)
fn dx_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let cx = wg.x + wg.z * nwg.x; // column tiles fold into x·z past 65,535
  let live = cx * WG + lid < p.ncols;
  let col = min(cx * WG + lid, p.ncols - 1u);
  let r0 = wg.y * 8u;
  let hw = p.h * p.w;
  let n = col / hw;
  let pix = col % hw;
  let ty0 = i32(pix / p.w) + i32(p.pad_t);
  let tx0 = i32(pix % p.w) + i32(p.pad_l);
  let db = n * p.o * p.oh * p.ow;
  let c = min(r0 + sl % 8u, p.m - 1u);
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  for (var k = 0u; k < p.k; k += 4u) {
    let av = vec4<f32>(dw_at(k, c), dw_at(k + 1u, c), dw_at(k + 2u, c), dw_at(k + 3u, c));
    let bv = vec4<f32>(ddy_at(k, db, ty0, tx0), ddy_at(k + 1u, db, ty0, tx0), ddy_at(k + 2u, db, ty0, tx0), ddy_at(k + 3u, db, ty0, tx0));
    lo.x += dot(subgroupBroadcast(av, 0u), bv);
    lo.y += dot(subgroupBroadcast(av, 1u), bv);
    lo.z += dot(subgroupBroadcast(av, 2u), bv);
    lo.w += dot(subgroupBroadcast(av, 3u), bv);
    hi.x += dot(subgroupBroadcast(av, 4u), bv);
    hi.y += dot(subgroupBroadcast(av, 5u), bv);
    hi.z += dot(subgroupBroadcast(av, 6u), bv);
    hi.w += dot(subgroupBroadcast(av, 7u), bv);
  }
  store8(r0, live, n * p.c * hw + pix, hw, lo, hi);
}

// dw: k = (n, oy, ox) walked with counters (no runtime divisions); row operand dy[n, o, oy, ox] for
// o = row (contiguous in k within an image), column operand x at tap (c, ky, kx) = col.
@compute @workgroup_size(WG)
fn dw_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let cx = wg.x + wg.z * nwg.x; // column tiles fold into x·z past 65,535
  let live = cx * WG + lid < p.ncols;
  let col = min(cx * WG + lid, p.ncols - 1u);
  let r0 = wg.y * 8u;
  let kk = KH * KW;
  let c = col / kk;
  let r = col % kk;
  let ky = i32(r / KW) - i32(p.pad_t);
  let kx = i32(r % KW) - i32(p.pad_l);
  let ohw = p.oh * p.ow;
  let o = min(r0 + sl % 8u, p.m - 1u);
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  for (var n = 0u; n < p.n; n++) {
    let xb = (n * p.c + c) * p.h * p.w;
    let dyb = (n * p.o + o) * ohw;
    for (var oy = 0u; oy < p.oh; oy++) {
      let iy = i32(oy * SH) + ky;
      let rowok = iy >= 0 && iy < i32(p.h);
      let xrow = xb + u32(max(iy, 0)) * p.w;
      let drow = dyb + oy * p.ow;
      for (var ox = 0u; ox < p.ow; ox += 4u) {
        var av = vec4<f32>(0.0);
        var bv = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
          let oxj = ox + j;
          let ix = i32(oxj * SW) + kx;
          let ok = rowok && oxj < p.ow && ix >= 0 && ix < i32(p.w);
          bv[j] = select(0.0, src0[select(0u, xrow + u32(ix), ok)], ok);
          av[j] = select(0.0, src1[drow + min(oxj, p.ow - 1u)], oxj < p.ow);
        }
        lo.x += dot(subgroupBroadcast(av, 0u), bv);
        lo.y += dot(subgroupBroadcast(av, 1u), bv);
        lo.z += dot(subgroupBroadcast(av, 2u), bv);
        lo.w += dot(subgroupBroadcast(av, 3u), bv);
        hi.x += dot(subgroupBroadcast(av, 4u), bv);
        hi.y += dot(subgroupBroadcast(av, 5u), bv);
        hi.z += dot(subgroupBroadcast(av, 6u), bv);
        hi.w += dot(subgroupBroadcast(av, 7u), bv);
      }
    }
  }
  store8(r0, live, col, p.ncols, lo, hi);
}
