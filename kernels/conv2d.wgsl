// Conv2d family (NCHW, groups = 1) as implicit GEMMs without a patch buffer (and, for lavapipe, the patch kernels
// im2col / im2col_t / col2im that let large convolutions run as packed matmuls):
//   MODE 0 forward  y[n,o,p]      = Σ_{c,ky,kx} w[o,c,ky,kx] · x[n,c,iy,ix] (+ bias[o])
//          rows = o (M = O), cols = (n,oy,ox), k = (c,ky,kx)
//   MODE 1 dx       dx[n,c,iy,ix] = Σ_{o,ky,kx} w[o,c,ky,kx] · dy[n,o,oy,ox]  (oy·SH = iy + pad_t − ky)
//          rows = c (M = C), cols = (n,iy,ix), k = (o,ky,kx)
//   MODE 2 dw       dw[o,c,ky,kx] = Σ_{n,oy,ox} dy[n,o,oy,ox] · x[n,c,iy,ix]
//          rows = o (M = O), cols = (c,ky,kx), k = (n,oy,ox)
// Padding: only pad_t/pad_l are needed; bottom/right padding is implied by OH/OW and the bounds checks,
// so asymmetric padding (the VAE's right/bottom pad) costs nothing extra.
// Forward epilogue (epi_fwd): y = acc + bias[o] + shift[n, o] (epi bit 2: a per-sample channel shift, the
// resnet's time embedding) + res[y index] (epi bit 1: a residual of y's shape, the resnet's shortcut), so
// a diffusers resnet needs no separate add launches.
//
// Three variants share the bindings:
//   *_rb     no barriers, one column per invocation and OB rows in registers; the row operand (weights,
//            or dy for dw) has a subgroup-uniform address, the column operand is the per-lane load.
//   *_sg     (conv2d_sg.wgsl, composed after this file) *_rb with the row operand spread over lanes and
//            shared by subgroupBroadcast: the lavapipe default when the adapter has subgroups.
//   tiled    GPUs: 64×64 output tile per 256-invocation workgroup, BK = 16 shared-memory tiles, 4×4 per thread.

override KH: u32 = 3u;
override KW: u32 = 3u;
override SH: u32 = 1u;
override SW: u32 = 1u;
override WG: u32 = 64u;
override MODE: u32 = 0u;

const OB: u32 = 8u; // rows per invocation in the *_rb kernels

struct Params {
  n: u32, c: u32, h: u32, w: u32,
  o: u32, oh: u32, ow: u32, pad_t: u32,
  pad_l: u32, m: u32, ncols: u32, k: u32,
  bias_on: u32, epi: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// MODE 0: src0 = x, src1 = w, bias = bias (or any buffer when bias_on = 0), dst = y
// MODE 1: src0 = dy, src1 = w, bias = any buffer (unused value), dst = dx
// MODE 2: src0 = x, src1 = dy, bias = any buffer (unused value), dst = dw
@group(0) @binding(1) var<storage, read> src0: array<f32>;
@group(0) @binding(2) var<storage, read> src1: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
// Forward entry points (and `tiled`, which serves every mode) also bind the epilogue's operands; any
// buffer when their epi bit is clear.
@group(0) @binding(5) var<storage, read> res: array<f32>;
@group(0) @binding(6) var<storage, read> shift: array<f32>;

fn bias_at(row: u32) -> f32 {
  // Always read (the binding must stay live); the value only counts when bias_on.
  let b = bias[min(row, arrayLength(&bias) - 1u)];
  return select(0.0, b, p.bias_on != 0u && MODE == 0u);
}

// The forward output value at channel o of image n, flat output index i (reads kept live, see bias_at).
fn epi_fwd(v: f32, o: u32, n: u32, i: u32) -> f32 {
  let r = res[min(i, arrayLength(&res) - 1u)];
  let s = shift[min(n * p.o + o, arrayLength(&shift) - 1u)];
  return v + bias_at(o) + select(0.0, s, (p.epi & 2u) != 0u) + select(0.0, r, (p.epi & 1u) != 0u);
}

// dx's taps: the output coordinate whose tap lands on input position t (t = input + pad − tap) along an axis of
// stride s and `len` outputs, and whether it exists (t ≥ 0, on the stride grid, inside the output): (o, ok).
fn tap_source(t: i32, s: u32, len: u32) -> vec2<u32> {
  let o = u32(max(t, 0)) / s;
  return vec2<u32>(o, select(0u, 1u, t >= 0 && u32(t) % s == 0u && o < len));
}

// ---------------------------------------------------------------- lavapipe: im2col ahead of a matmul
// x[xb + iy·W + ix] of one input plane, or 0 in the padding (the patch kernels' gather).
fn x_or_pad(xb: u32, iy: i32, ix: i32) -> f32 {
  let ok = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
  return select(0.0, src0[select(0u, xb + u32(iy) * p.w + u32(ix), ok)], ok);
}

// im2col: cols[n, pix, (c·KH + ky)·KW + kx] = x[n, c, iy, ix] (0 in the padding), one row of p.k values per
// output pixel (p.k = C·KH·KW, a multiple of 4). The forward then runs as one batched product
// y[n] = w [O, C·KH·KW] · cols[n]ᵀ, whose operands blocked_vab (kernels/matmul_sg.wgsl) reads as vec4.
// Workgroup (x, pix, n) covers WG channels of one output pixel, so only the pixel's (oy, ox) needs a division,
// and it is uniform. The host binds x at src0, src1 and bias.
@compute @workgroup_size(WG)
fn im2col(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = wg.x * WG + lid;
  if (c >= p.c) { return; }
  let pix = wg.y;
  let n = wg.z;
  let iy0 = i32((pix / p.ow) * SH) - i32(p.pad_t);
  let ix0 = i32((pix % p.ow) * SW) - i32(p.pad_l);
  let xb = (n * p.c + c) * p.h * p.w;
  let ob = (n * p.oh * p.ow + pix) * p.k + c * KH * KW;
  let live = select(0.0, src1[0] + bias[0], p.k == 0u); // keeps the bindings in the layout
  for (var ky = 0u; ky < KH; ky++) {
    for (var kx = 0u; kx < KW; kx++) {
      dst[ob + ky * KW + kx] = x_or_pad(xb, iy0 + i32(ky), ix0 + i32(kx)) + live;
    }
  }
}

// im2col_t (dw ahead of a product): colsT[n, (c·KH + ky)·KW + kx, pix] = x[n, c, iy, ix], the transpose of im2col's
// rows, so that dw = Σ_n dy[n] [O, pix] · colsT[n]ᵀ reads both operands contiguous in pix. Lanes run along the
// output pixels (contiguous writes); workgroup (x, c, n) covers WG pixels of channel c.
@compute @workgroup_size(WG)
fn im2col_t(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let pix = wg.x * WG + lid;
  let ohw = p.oh * p.ow;
  if (pix >= ohw) { return; }
  let c = wg.y;
  let n = wg.z;
  let iy0 = i32((pix / p.ow) * SH) - i32(p.pad_t);
  let ix0 = i32((pix % p.ow) * SW) - i32(p.pad_l);
  let xb = (n * p.c + c) * p.h * p.w;
  let ob = (n * p.k + c * KH * KW) * ohw + pix;
  let live = select(0.0, src1[0] + bias[0], p.k == 0u); // keeps the bindings in the layout
  for (var ky = 0u; ky < KH; ky++) {
    for (var kx = 0u; kx < KW; kx++) {
      dst[ob + (ky * KW + kx) * ohw] = x_or_pad(xb, iy0 + i32(ky), ix0 + i32(kx)) + live;
    }
  }
}

// col2im (dx after a product): dx[n, c, iy, ix] = Σ_{ky,kx} dcols[n, pix(oy, ox), (c·KH + ky)·KW + kx] over the
// taps whose output position oy·SH = iy + pad_t − ky (and likewise x) lies on the grid, where
// dcols[n] = dy[n]ᵀ · w [O, C·KH·KW]. One input element per lane, the taps in registers (no atomics).
@compute @workgroup_size(WG)
fn col2im(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  let hw = p.h * p.w;
  if (i >= p.n * p.c * hw) { return; }
  let n = i / (p.c * hw);
  let c = (i / hw) % p.c;
  let iy = i32((i % hw) / p.w) + i32(p.pad_t);
  let ix = i32(i % p.w) + i32(p.pad_l);
  let rb = n * p.oh * p.ow;
  let live = select(0.0, src1[0] + bias[0], p.k == 0u); // keeps the bindings in the layout
  var acc = live;
  for (var ky = 0u; ky < KH; ky++) {
    let sy = tap_source(iy - i32(ky), SH, p.oh);
    for (var kx = 0u; kx < KW; kx++) {
      let sx = tap_source(ix - i32(kx), SW, p.ow);
      let ok = sy.y * sx.y != 0u;
      let j = (rb + sy.x * p.ow + sx.x) * p.k + (c * KH + ky) * KW + kx;
      acc += select(0.0, src0[select(0u, j, ok)], ok);
    }
  }
  dst[i] = acc;
}

// ---------------------------------------------------------------- lavapipe: register-blocked, no barriers

@compute @workgroup_size(WG)
fn fwd_rb(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let cx = wg.x + wg.z * nwg.x; // column tiles fold into x·z past 65,535
  let col = cx * WG + lid;
  let r0 = wg.y * OB;
  if (col >= p.ncols) { return; }
  let ohw = p.oh * p.ow;
  let n = col / ohw;
  let pix = col % ohw;
  let iy0 = i32((pix / p.ow) * SH) - i32(p.pad_t);
  let ix0 = i32((pix % p.ow) * SW) - i32(p.pad_l);
  let kk = KH * KW;
  var acc: array<f32, OB>;
  for (var c = 0u; c < p.c; c++) {
    let xbase = (n * p.c + c) * p.h * p.w;
    for (var ky = 0u; ky < KH; ky++) {
      let iy = iy0 + i32(ky);
      let rowok = iy >= 0 && iy < i32(p.h);
      for (var kx = 0u; kx < KW; kx++) {
        let ix = ix0 + i32(kx);
        let ok = rowok && ix >= 0 && ix < i32(p.w);
        let xv = select(0.0, src0[select(0u, xbase + u32(iy) * p.w + u32(ix), ok)], ok);
        let kidx = c * kk + ky * KW + kx;
        for (var j = 0u; j < OB; j++) {
          let o = min(r0 + j, p.m - 1u);
          acc[j] += xv * src1[o * p.k + kidx];
        }
      }
    }
  }
  for (var j = 0u; j < OB; j++) {
    let o = r0 + j;
    let i = (n * p.o + o) * ohw + pix;
    if (o < p.m) { dst[i] = epi_fwd(acc[j], o, n, i); }
  }
}

@compute @workgroup_size(WG)
fn dx_rb(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let cx = wg.x + wg.z * nwg.x; // column tiles fold into x·z past 65,535
  let col = cx * WG + lid;
  let r0 = wg.y * OB;
  if (col >= p.ncols) { return; }
  let hw = p.h * p.w;
  let ohw = p.oh * p.ow;
  let n = col / hw;
  let pix = col % hw;
  let ty0 = i32(pix / p.w) + i32(p.pad_t);
  let tx0 = i32(pix % p.w) + i32(p.pad_l);
  let kk = KH * KW;
  var acc: array<f32, OB>;
  for (var o = 0u; o < p.o; o++) {
    let dbase = (n * p.o + o) * ohw;
    for (var ky = 0u; ky < KH; ky++) {
      let sy = tap_source(ty0 - i32(ky), SH, p.oh);
      for (var kx = 0u; kx < KW; kx++) {
        let sx = tap_source(tx0 - i32(kx), SW, p.ow);
        let ok = sy.y * sx.y != 0u;
        let dv = select(0.0, src0[select(0u, dbase + sy.x * p.ow + sx.x, ok)], ok);
        let kidx = ky * KW + kx;
        for (var j = 0u; j < OB; j++) {
          let c = min(r0 + j, p.m - 1u);
          acc[j] += dv * src1[(o * p.c + c) * kk + kidx];
        }
      }
    }
  }
  for (var j = 0u; j < OB; j++) {
    let c = r0 + j;
    if (c < p.m) { dst[(n * p.c + c) * hw + pix] = acc[j] + bias_at(c); }
  }
}

@compute @workgroup_size(WG)
fn dw_rb(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let cx = wg.x + wg.z * nwg.x; // column tiles fold into x·z past 65,535
  let col = cx * WG + lid;
  let r0 = wg.y * OB;
  if (col >= p.ncols) { return; }
  let kk = KH * KW;
  let c = col / kk;
  let r = col % kk;
  let ky = r / KW;
  let kx = r % KW;
  let ohw = p.oh * p.ow;
  var acc: array<f32, OB>;
  for (var n = 0u; n < p.n; n++) {
    let xbase = (n * p.c + c) * p.h * p.w;
    for (var oy = 0u; oy < p.oh; oy++) {
      let iy = i32(oy * SH + ky) - i32(p.pad_t);
      let rowok = iy >= 0 && iy < i32(p.h);
      let dbase = n * p.o * ohw + oy * p.ow;
      for (var ox = 0u; ox < p.ow; ox++) {
        let ix = i32(ox * SW + kx) - i32(p.pad_l);
        let ok = rowok && ix >= 0 && ix < i32(p.w);
        let xv = select(0.0, src0[select(0u, xbase + u32(iy) * p.w + u32(ix), ok)], ok);
        for (var j = 0u; j < OB; j++) {
          let o = min(r0 + j, p.m - 1u);
          acc[j] += xv * src1[dbase + o * ohw + ox];
        }
      }
    }
  }
  for (var j = 0u; j < OB; j++) {
    let o = r0 + j;
    if (o < p.m) { dst[o * p.ncols + col] = acc[j] + bias_at(o); }
  }
}

// ---------------------------------------------------------------- GPUs: shared-memory tiles

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> As: array<vec4<f32>, 256>; // [BK][BM/4]
var<workgroup> Bs: array<vec4<f32>, 256>; // [BK][BN/4]

// A[row, k] of the implicit GEMM (0 outside).
fn a_at(row: u32, k: u32) -> f32 {
  if (row >= p.m || k >= p.k) { return 0.0; }
  let kk = KH * KW;
  if (MODE == 0u) { return src1[row * p.k + k]; }
  if (MODE == 1u) { return src1[((k / kk) * p.c + row) * kk + k % kk]; }
  let ohw = p.oh * p.ow;
  return src1[((k / ohw) * p.o + row) * ohw + k % ohw];
}

// Per-column part of B's address, decoded once per thread (no runtime divisions in the k loop for
// MODE 0/1): (base offset, row origin, column origin, column in range).
struct ColInfo { base: u32, y0: i32, x0: i32, ok: bool }

fn col_info(col: u32) -> ColInfo {
  let ok = col < p.ncols;
  let cc = min(col, p.ncols - 1u);
  if (MODE == 0u) {
    let ohw = p.oh * p.ow;
    let pix = cc % ohw;
    return ColInfo((cc / ohw) * p.c * p.h * p.w, i32((pix / p.ow) * SH) - i32(p.pad_t), i32((pix % p.ow) * SW) - i32(p.pad_l), ok);
  }
  if (MODE == 1u) {
    let hw = p.h * p.w;
    let pix = cc % hw;
    return ColInfo((cc / hw) * p.o * p.oh * p.ow, i32(pix / p.w) + i32(p.pad_t), i32(pix % p.w) + i32(p.pad_l), ok);
  }
  let kk = KH * KW;
  let r = cc % kk;
  return ColInfo((cc / kk) * p.h * p.w, i32(r / KW) - i32(p.pad_t), i32(r % KW) - i32(p.pad_l), ok);
}

// B[k, col] of the implicit GEMM (0 outside and in the padding).
fn b_at(k: u32, ci: ColInfo) -> f32 {
  if (k >= p.k || !ci.ok) { return 0.0; }
  let kk = KH * KW;
  if (MODE == 0u) {
    let r = k % kk;
    let iy = ci.y0 + i32(r / KW);
    let ix = ci.x0 + i32(r % KW);
    if (iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) { return 0.0; }
    return src0[ci.base + ((k / kk) * p.h + u32(iy)) * p.w + u32(ix)];
  }
  if (MODE == 1u) {
    let r = k % kk;
    let ty = ci.y0 - i32(r / KW);
    let tx = ci.x0 - i32(r % KW);
    if (ty < 0 || tx < 0) { return 0.0; }
    let oy = u32(ty) / SH;
    let ox = u32(tx) / SW;
    if (u32(ty) % SH != 0u || u32(tx) % SW != 0u || oy >= p.oh || ox >= p.ow) { return 0.0; }
    return src0[ci.base + ((k / kk) * p.oh + oy) * p.ow + ox];
  }
  let ohw = p.oh * p.ow;
  let n = k / ohw;
  let pix = k % ohw;
  let iy = i32((pix / p.ow) * SH) + ci.y0;
  let ix = i32((pix % p.ow) * SW) + ci.x0;
  if (iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) { return 0.0; }
  return src0[ci.base + (n * p.c * p.h + u32(iy)) * p.w + u32(ix)];
}

fn dst_index(row: u32, col: u32) -> u32 {
  if (MODE == 0u) { let ohw = p.oh * p.ow; return ((col / ohw) * p.o + row) * ohw + col % ohw; }
  if (MODE == 1u) { let hw = p.h * p.w; return ((col / hw) * p.c + row) * hw + col % hw; }
  return row * p.ncols + col;
}

@compute @workgroup_size(256)
fn tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let cx = wg.x + wg.z * nwg.x; // column tiles fold into x·z past 65,535
  let tx = lid % 16u; // columns tx*4 .. tx*4+3
  let ty = lid / 16u; // rows ty*4 .. ty*4+3
  let row0 = wg.y * BM;
  let col0 = cx * BN;
  var acc: array<vec4<f32>, 4>;
  // Loader coordinates: A as [BM rows][BK] with k fastest (weights are k-contiguous in MODE 0),
  // B as [BK][BN] with columns fastest (pixels are contiguous in x and dy).
  let a_k = lid % BK;
  let a_r = lid / BK; // 0..15, rows a_r + 16 i
  let b_c = lid % BN;
  let b_k = lid / BN; // 0..3, k rows b_k + 4 i
  let ci = col_info(col0 + b_c);
  for (var k0 = 0u; k0 < p.k; k0 += BK) {
    for (var i = 0u; i < 4u; i++) {
      let r = a_r + 16u * i;
      As[a_k * 16u + r / 4u][r % 4u] = a_at(row0 + r, k0 + a_k);
      let kb = b_k + 4u * i;
      Bs[kb * 16u + b_c / 4u][b_c % 4u] = b_at(k0 + kb, ci);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let a = As[kk * 16u + ty];
      let b = Bs[kk * 16u + tx];
      acc[0] += a.x * b;
      acc[1] += a.y * b;
      acc[2] += a.z * b;
      acc[3] += a.w * b;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + ty * 4u + i;
    if (row >= p.m) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + tx * 4u + j;
      let di = dst_index(row, col);
      if (col < p.ncols) { dst[di] = epi_fwd(acc[i][j], row, col / max(p.oh * p.ow, 1u), di); }
    }
  }
}
