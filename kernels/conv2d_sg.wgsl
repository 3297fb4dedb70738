enable subgroups;

// Conv2d family, subgroup entry points (composed after conv2d.wgsl, whose overrides, bindings and
// Params they use) and kernels/lib/bcast8.wgsl.
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

// fwd_sg and dx_sg: two columns per lane (col and col + WG of a 2·WG-column tile), so every broadcast
// weight vector feeds two pixels: half the weight loads and broadcasts per FMA of one column per lane, and
// 0.75–0.9× its time at the toy and SD shapes (same-process A/B, scratch script of 2026-12-06). dw_sg keeps
// one column per lane: two gave no gain there (its columns are the few taps, its k the long pixel walk).
//
// fwd_sg: rows = output channels, columns = output pixels. The taps are the outer loops and the input channels
// the inner one: a tap's offsets and padding test are computed once per tap (not a division of k by KH·KW and
// KW per element), and the channel loop walks plain strides (x by H·W, w by KH·KW).
fn px_origin(col: u32) -> vec3<i32> {
  let ohw = p.oh * p.ow;
  let n = col / ohw;
  let pix = col % ohw;
  return vec3<i32>(i32((pix / p.ow) * SH) - i32(p.pad_t), i32((pix % p.ow) * SW) - i32(p.pad_l), i32(n * p.c * p.h * p.w));
}

fn store_fwd8(col: u32, r0: u32, lo: vec4<f32>, hi: vec4<f32>) {
  if (col >= p.ncols) { return; }
  let ohw = p.oh * p.ow;
  let n = col / ohw;
  let pix = col % ohw;
  for (var i = 0u; i < 8u; i++) {
    let r = r0 + i;
    let di = (n * p.o + r) * ohw + pix;
    if (r < p.m) { dst[di] = epi_fwd(select(hi[i % 4u], lo[i % 4u], i < 4u), r, n, di); }
  }
}

@compute @workgroup_size(WG)
fn fwd_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let cx = wg.x + wg.z * nwg.x;
  let colA = cx * 2u * WG + lid;
  let colB = colA + WG;
  let a = px_origin(min(colA, p.ncols - 1u));
  let b = px_origin(min(colB, p.ncols - 1u));
  let r0 = wg.y * 8u;
  let hw = p.h * p.w;
  let kk = KH * KW;
  let wrow = min(r0 + sl % 8u, p.m - 1u) * p.k;
  // Rows r0..r0+3 and r0+4..r0+7 of column A, then of column B.
  var acc = array<vec4<f32>, 4>();
  for (var ky = 0u; ky < KH; ky++) {
    let iyA = a.x + i32(ky);
    let iyB = b.x + i32(ky);
    for (var kx = 0u; kx < KW; kx++) {
      let ixA = a.y + i32(kx);
      let ixB = b.y + i32(kx);
      let okA = iyA >= 0 && iyA < i32(p.h) && ixA >= 0 && ixA < i32(p.w);
      let okB = iyB >= 0 && iyB < i32(p.h) && ixB >= 0 && ixB < i32(p.w);
      let xoA = select(0u, u32(a.z + iyA * i32(p.w) + ixA), okA);
      let xoB = select(0u, u32(b.z + iyB * i32(p.w) + ixB), okB);
      let wo = wrow + ky * KW + kx;
      var c = 0u;
      for (; c + 4u <= p.c; c += 4u) {
        let wi = wo + c * kk;
        let av = vec4<f32>(src1[wi], src1[wi + kk], src1[wi + 2u * kk], src1[wi + 3u * kk]);
        let xa = xoA + c * hw;
        let xb = xoB + c * hw;
        let bA = select(vec4<f32>(0.0), vec4<f32>(src0[xa], src0[xa + hw], src0[xa + 2u * hw], src0[xa + 3u * hw]), okA);
        let bB = select(vec4<f32>(0.0), vec4<f32>(src0[xb], src0[xb + hw], src0[xb + 2u * hw], src0[xb + 3u * hw]), okB);
        bcast8_acc2(av, bA, bB, &acc);
      }
      for (; c < p.c; c++) {
        bcast8_acc2(vec4<f32>(src1[wo + c * kk], 0.0, 0.0, 0.0), vec4<f32>(select(0.0, src0[xoA + c * hw], okA), 0.0, 0.0, 0.0), vec4<f32>(select(0.0, src0[xoB + c * hw], okB), 0.0, 0.0, 0.0), &acc);
      }
    }
  }
  store_fwd8(colA, r0, acc[0], acc[1]);
  store_fwd8(colB, r0, acc[2], acc[3]);
}

// dx_sg: rows = input channels, columns = input pixels, the taps outermost (each tap's output position and
// stride test once per tap) and the output channels innermost: dy by OH·OW, w by C·KH·KW.
fn dx_origin(col: u32) -> vec3<i32> {
  let hw = p.h * p.w;
  let n = col / hw;
  let pix = col % hw;
  return vec3<i32>(i32(pix / p.w) + i32(p.pad_t), i32(pix % p.w) + i32(p.pad_l), i32(n * p.o * p.oh * p.ow));
}

@compute @workgroup_size(WG)
fn dx_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let cx = wg.x + wg.z * nwg.x;
  let colA = cx * 2u * WG + lid;
  let colB = colA + WG;
  let a = dx_origin(min(colA, p.ncols - 1u));
  let b = dx_origin(min(colB, p.ncols - 1u));
  let r0 = wg.y * 8u;
  let hw = p.h * p.w;
  let ohw = p.oh * p.ow;
  let kk = KH * KW;
  let c = min(r0 + sl % 8u, p.m - 1u);
  let ostride = p.c * kk;
  // Rows r0..r0+3 and r0+4..r0+7 of column A, then of column B.
  var acc = array<vec4<f32>, 4>();
  for (var ky = 0u; ky < KH; ky++) {
    let syA = tap_source(a.x - i32(ky), SH, p.oh);
    let syB = tap_source(b.x - i32(ky), SH, p.oh);
    for (var kx = 0u; kx < KW; kx++) {
      let sxA = tap_source(a.y - i32(kx), SW, p.ow);
      let sxB = tap_source(b.y - i32(kx), SW, p.ow);
      let okA = syA.y * sxA.y != 0u;
      let okB = syB.y * sxB.y != 0u;
      let yoA = select(0u, u32(a.z) + syA.x * p.ow + sxA.x, okA);
      let yoB = select(0u, u32(b.z) + syB.x * p.ow + sxB.x, okB);
      let wo = c * kk + ky * KW + kx;
      var o = 0u;
      for (; o + 4u <= p.o; o += 4u) {
        let wi = wo + o * ostride;
        let av = vec4<f32>(src1[wi], src1[wi + ostride], src1[wi + 2u * ostride], src1[wi + 3u * ostride]);
        let ya = yoA + o * ohw;
        let yb = yoB + o * ohw;
        let bA = select(vec4<f32>(0.0), vec4<f32>(src0[ya], src0[ya + ohw], src0[ya + 2u * ohw], src0[ya + 3u * ohw]), okA);
        let bB = select(vec4<f32>(0.0), vec4<f32>(src0[yb], src0[yb + ohw], src0[yb + 2u * ohw], src0[yb + 3u * ohw]), okB);
        bcast8_acc2(av, bA, bB, &acc);
      }
      for (; o < p.o; o++) {
        bcast8_acc2(vec4<f32>(src1[wo + o * ostride], 0.0, 0.0, 0.0), vec4<f32>(select(0.0, src0[yoA + o * ohw], okA), 0.0, 0.0, 0.0), vec4<f32>(select(0.0, src0[yoB + o * ohw], okB), 0.0, 0.0, 0.0), &acc);
      }
    }
  }
  let nA = min(colA, p.ncols - 1u) / hw;
  let nB = min(colB, p.ncols - 1u) / hw;
  store8(r0, colA < p.ncols, nA * p.c * hw + colA % hw, hw, acc[0], acc[1]);
  store8(r0, colB < p.ncols, nB * p.c * hw + colB % hw, hw, acc[2], acc[3]);
}
