enable subgroups;

// Conv2d family, subgroup entry points (composed after conv2d.wgsl, whose overrides, bindings and
// Params they use).
//
// *_sg (lavapipe with subgroups): like *_rb with 8 rows per lane, but lane l loads the row operand of
// row r0 + l%8 (4 k at a time) and every lane takes row i with subgroupBroadcast(…, i): one lane-varying
// load per 4 k and row instead of 8 uniform loads (which lavapipe scalarises per lane). Subgroup size ≥ 8.

fn store8(r0: u32, live: bool, idx0: u32, rstride: u32, lo: vec4<f32>, hi: vec4<f32>) {
  if (!live) { return; }
  for (var i = 0u; i < 8u; i++) {
    let r = r0 + i;
    if (r < p.m) { dst[idx0 + r * rstride] = select(hi[i % 4u], lo[i % 4u], i < 4u) + bias_at(r); }
  }
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

// fwd_sg: rows = output channels, columns = output pixels. The taps are the outer loops and the input channels
// the inner one: a tap's offsets and padding test are computed once per tap (not a division of k by KH·KW and
// KW per element: 6–20% faster at the toy and SD shapes, same-process A/B), and the channel loop walks plain
// strides (x by H·W, w by KH·KW).
@compute @workgroup_size(WG)
fn fwd_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let cx = wg.x + wg.z * nwg.x;
  let live = cx * WG + lid < p.ncols;
  let col = min(cx * WG + lid, p.ncols - 1u);
  let r0 = wg.y * 8u;
  let ohw = p.oh * p.ow;
  let n = col / ohw;
  let pix = col % ohw;
  let iy0 = i32((pix / p.ow) * SH) - i32(p.pad_t);
  let ix0 = i32((pix % p.ow) * SW) - i32(p.pad_l);
  let hw = p.h * p.w;
  let kk = KH * KW;
  let xb = n * p.c * hw;
  let wrow = min(r0 + sl % 8u, p.m - 1u) * p.k;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  for (var ky = 0u; ky < KH; ky++) {
    let iy = iy0 + i32(ky);
    for (var kx = 0u; kx < KW; kx++) {
      let ix = ix0 + i32(kx);
      let ok = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
      let xo = select(0u, xb + u32(iy) * p.w + u32(ix), ok);
      let wo = wrow + ky * KW + kx;
      var c = 0u;
      for (; c + 4u <= p.c; c += 4u) {
        let xi = xo + c * hw;
        let wi = wo + c * kk;
        let av = vec4<f32>(src1[wi], src1[wi + kk], src1[wi + 2u * kk], src1[wi + 3u * kk]);
        let bv = select(vec4<f32>(0.0), vec4<f32>(src0[xi], src0[xi + hw], src0[xi + 2u * hw], src0[xi + 3u * hw]), ok);
        lo.x += dot(subgroupBroadcast(av, 0u), bv);
        lo.y += dot(subgroupBroadcast(av, 1u), bv);
        lo.z += dot(subgroupBroadcast(av, 2u), bv);
        lo.w += dot(subgroupBroadcast(av, 3u), bv);
        hi.x += dot(subgroupBroadcast(av, 4u), bv);
        hi.y += dot(subgroupBroadcast(av, 5u), bv);
        hi.z += dot(subgroupBroadcast(av, 6u), bv);
        hi.w += dot(subgroupBroadcast(av, 7u), bv);
      }
      for (; c < p.c; c++) {
        let a1 = src1[wo + c * kk];
        let b1 = select(0.0, src0[xo + c * hw], ok);
        lo += vec4<f32>(subgroupBroadcast(a1, 0u), subgroupBroadcast(a1, 1u), subgroupBroadcast(a1, 2u), subgroupBroadcast(a1, 3u)) * b1;
        hi += vec4<f32>(subgroupBroadcast(a1, 4u), subgroupBroadcast(a1, 5u), subgroupBroadcast(a1, 6u), subgroupBroadcast(a1, 7u)) * b1;
      }
    }
  }
  if (!live) { return; }
  for (var i = 0u; i < 8u; i++) {
    let r = r0 + i;
    let di = (n * p.o + r) * ohw + pix;
    if (r < p.m) { dst[di] = epi_fwd(select(hi[i % 4u], lo[i % 4u], i < 4u), r, n, di); }
  }
}

// dx_sg: rows = input channels, columns = input pixels, the taps outermost (each tap's output position and
// stride test once per tap; 1.0–2.2× faster than a per-k decode, A/B) and the output channels innermost: dy by
// OH·OW, w by C·KH·KW.
@compute @workgroup_size(WG)
fn dx_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let cx = wg.x + wg.z * nwg.x;
  let live = cx * WG + lid < p.ncols;
  let col = min(cx * WG + lid, p.ncols - 1u);
  let r0 = wg.y * 8u;
  let hw = p.h * p.w;
  let ohw = p.oh * p.ow;
  let n = col / hw;
  let pix = col % hw;
  let ty0 = i32(pix / p.w) + i32(p.pad_t);
  let tx0 = i32(pix % p.w) + i32(p.pad_l);
  let kk = KH * KW;
  let db = n * p.o * ohw;
  let c = min(r0 + sl % 8u, p.m - 1u);
  let ostride = p.c * kk;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  for (var ky = 0u; ky < KH; ky++) {
    let ty = ty0 - i32(ky);
    let oy = u32(max(ty, 0)) / SH;
    let rowok = ty >= 0 && u32(ty) % SH == 0u && oy < p.oh;
    for (var kx = 0u; kx < KW; kx++) {
      let tx = tx0 - i32(kx);
      let ox = u32(max(tx, 0)) / SW;
      let ok = rowok && tx >= 0 && u32(tx) % SW == 0u && ox < p.ow;
      let yo = select(0u, db + oy * p.ow + ox, ok);
      let wo = c * kk + ky * KW + kx;
      var o = 0u;
      for (; o + 4u <= p.o; o += 4u) {
        let yi = yo + o * ohw;
        let wi = wo + o * ostride;
        let av = vec4<f32>(src1[wi], src1[wi + ostride], src1[wi + 2u * ostride], src1[wi + 3u * ostride]);
        let bv = select(vec4<f32>(0.0), vec4<f32>(src0[yi], src0[yi + ohw], src0[yi + 2u * ohw], src0[yi + 3u * ohw]), ok);
        lo.x += dot(subgroupBroadcast(av, 0u), bv);
        lo.y += dot(subgroupBroadcast(av, 1u), bv);
        lo.z += dot(subgroupBroadcast(av, 2u), bv);
        lo.w += dot(subgroupBroadcast(av, 3u), bv);
        hi.x += dot(subgroupBroadcast(av, 4u), bv);
        hi.y += dot(subgroupBroadcast(av, 5u), bv);
        hi.z += dot(subgroupBroadcast(av, 6u), bv);
        hi.w += dot(subgroupBroadcast(av, 7u), bv);
      }
      for (; o < p.o; o++) {
        let a1 = src1[wo + o * ostride];
        let b1 = select(0.0, src0[yo + o * ohw], ok);
        lo += vec4<f32>(subgroupBroadcast(a1, 0u), subgroupBroadcast(a1, 1u), subgroupBroadcast(a1, 2u), subgroupBroadcast(a1, 3u)) * b1;
        hi += vec4<f32>(subgroupBroadcast(a1, 4u), subgroupBroadcast(a1, 5u), subgroupBroadcast(a1, 6u), subgroupBroadcast(a1, 7u)) * b1;
      }
    }
  }
  store8(r0, live, n * p.c * hw + pix, hw, lo, hi);
}
