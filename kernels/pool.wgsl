// Pooling / resampling family over planes (n·c) of [H, W]; one invocation per output element,
// no barriers. Backward entries gather (one invocation per input element) so nothing needs atomics.
//   avg_fwd / avg_bwd     k_h×k_w average pooling, stride (s_h, s_w), no padding
//   mean_fwd / mean_bwd   global spatial mean [N,C,H,W] → [N,C] (Kahan-compensated serial sum)
//   up_fwd / up_bwd       nearest-neighbour 2× upsampling [H,W] → [2H,2W]

override WG: u32 = 256u;

struct Params {
  planes: u32, h: u32, w: u32, oh: u32,
  ow: u32, kh: u32, kw: u32, sh: u32,
  sw: u32, total: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG)
fn avg_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.total) { return; }
  let plane = i / (p.oh * p.ow);
  let r = i % (p.oh * p.ow);
  let base = plane * p.h * p.w + (r / p.ow) * p.sh * p.w + (r % p.ow) * p.sw;
  var s = 0.0;
  for (var ky = 0u; ky < p.kh; ky++) {
    for (var kx = 0u; kx < p.kw; kx++) { s += src[base + ky * p.w + kx]; }
  }
  dst[i] = s / f32(p.kh * p.kw);
}

// dx[iy, ix] = Σ over windows covering it of dy / (kh·kw).
@compute @workgroup_size(WG)
fn avg_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.total) { return; }
  let plane = i / (p.h * p.w);
  let r = i % (p.h * p.w);
  let iy = r / p.w;
  let ix = r % p.w;
  // Windows oy with oy·sh ≤ iy < oy·sh + kh.
  let oy0 = select(0u, (iy + 1u - p.kh + p.sh - 1u) / p.sh, iy + 1u > p.kh);
  let oy1 = min(iy / p.sh + 1u, p.oh);
  let ox0 = select(0u, (ix + 1u - p.kw + p.sw - 1u) / p.sw, ix + 1u > p.kw);
  let ox1 = min(ix / p.sw + 1u, p.ow);
  var s = 0.0;
  for (var oy = oy0; oy < oy1; oy++) {
    for (var ox = ox0; ox < ox1; ox++) { s += src[(plane * p.oh + oy) * p.ow + ox]; }
  }
  dst[i] = s / f32(p.kh * p.kw);
}

@compute @workgroup_size(WG)
fn mean_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let plane = linear_id(wg, nwg, lid);
  if (plane >= p.planes) { return; }
  let len = p.h * p.w;
  let base = plane * len;
  let one = kahan_one(nwg);
  var acc = vec2<f32>(0.0);
  for (var k = 0u; k < len; k++) { acc = kahan_add(acc, src[base + k], one); }
  dst[plane] = acc.x / f32(len);
}

@compute @workgroup_size(WG)
fn mean_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.total) { return; }
  let len = p.h * p.w;
  dst[i] = src[i / len] / f32(len);
}

@compute @workgroup_size(WG)
fn up_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.total) { return; }
  let plane = i / (p.oh * p.ow);
  let r = i % (p.oh * p.ow);
  dst[i] = src[(plane * p.h + (r / p.ow) / 2u) * p.w + (r % p.ow) / 2u];
}

@compute @workgroup_size(WG)
fn up_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.total) { return; }
  let plane = i / (p.h * p.w);
  let r = i % (p.h * p.w);
  let b = (plane * p.oh + 2u * (r / p.w)) * p.ow + 2u * (r % p.w);
  dst[i] = src[b] + src[b + 1u] + src[b + p.ow] + src[b + p.ow + 1u];
}
