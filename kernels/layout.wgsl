// Layout family: data-moving copies of 4-byte elements (f32 or i32 bits, copied as u32).
//   permute    y = x.permute(dims) made contiguous (rank ≤ 8): the output index is decomposed over
//              the output shape and recombined with the input strides of the permuted axes.
//   copy_axis  copies a block along one axis of tensors viewed as [outer, len, inner]:
//              y[o, dst_start + j, i] = x[o, src_start + j, i] for j < count. slice, concat and their
//              backward passes are all this kernel.
// Linear grids folded into x/y by the host.

override WG: u32 = 256u;

struct PermuteParams {
  n: u32,
  rank: u32,
  out_shape: array<vec4<u32>, 2>,
  in_strides: array<vec4<u32>, 2>, // stride in x of the axis that becomes output axis d
}

@group(0) @binding(0) var<uniform> pp: PermuteParams;
@group(0) @binding(1) var<storage, read> px: array<u32>;
@group(0) @binding(2) var<storage, read_write> py: array<u32>;

@compute @workgroup_size(WG)
fn permute(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= pp.n) { return; }
  var rem = i;
  var src = 0u;
  for (var d = i32(pp.rank) - 1; d >= 0; d--) {
    let dim = at8(pp.out_shape, u32(d));
    src += (rem % dim) * at8(pp.in_strides, u32(d));
    rem = rem / dim;
  }
  py[i] = px[src];
}

struct AxisParams {
  outer: u32,
  inner: u32,
  count: u32,     // elements copied along the axis
  src_len: u32,
  src_start: u32,
  dst_len: u32,
  dst_start: u32,
}

@group(0) @binding(0) var<uniform> ap: AxisParams;
@group(0) @binding(1) var<storage, read> ax: array<u32>;
@group(0) @binding(2) var<storage, read_write> ay: array<u32>;

@compute @workgroup_size(WG)
fn copy_axis(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = linear_id(wg, nwg, lid);
  let block = ap.count * ap.inner;
  if (t >= ap.outer * block) { return; }
  let o = t / block;
  let r = t % block; // = j * inner + i
  let j = r / ap.inner;
  let i = r % ap.inner;
  ay[(o * ap.dst_len + ap.dst_start + j) * ap.inner + i] = ax[(o * ap.src_len + ap.src_start + j) * ap.inner + i];
}

// concat2: y = cat([x0, x1], axis) in one launch, both viewed as [outer, len_i, inner] (a U-Net up block
// joins every hidden state with its skip this way).
struct Concat2Params {
  outer: u32,
  inner: u32,
  len0: u32,
  len1: u32,
}

@group(0) @binding(0) var<uniform> cp: Concat2Params;
@group(0) @binding(1) var<storage, read> cx0: array<u32>;
@group(0) @binding(2) var<storage, read> cx1: array<u32>;
@group(0) @binding(3) var<storage, read_write> cy: array<u32>;

@compute @workgroup_size(WG)
fn concat2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = linear_id(wg, nwg, lid);
  let block = (cp.len0 + cp.len1) * cp.inner;
  if (t >= cp.outer * block) { return; }
  let o = t / block;
  let r = t % block; // = j * inner + i
  let b0 = cp.len0 * cp.inner;
  // Both sources are read (clamped) so each binding stays live; the select picks the one that holds y[t].
  let v0 = cx0[min(o * b0 + r, arrayLength(&cx0) - 1u)];
  let v1 = cx1[min(o * cp.len1 * cp.inner + r - min(r, b0), arrayLength(&cx1) - 1u)];
  cy[t] = select(v1, v0, r < b0);
}
