enable f16;

// Casts between f32 and f16 storage (adapters with 'shader-f16' only).
// One element per invocation; the f16 side is a native array<f16>.

override WG: u32 = 256u;

struct Params { n: u32 }

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> hx: array<f32>;
@group(0) @binding(2) var<storage, read_write> hy: array<f16>;

@compute @workgroup_size(WG)
fn to_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  // Values beyond f16's range become ±inf (IEEE rounding of the conversion), as torch's .half() does.
  let v = hx[i];
  hy[i] = f16(clamp(v, -65504.0, 65504.0)) * select(1.0h, 2.0h, abs(v) >= 65520.0);
}

@group(0) @binding(1) var<storage, read> fx: array<f16>;
@group(0) @binding(2) var<storage, read_write> fy: array<f32>;

@compute @workgroup_size(WG)
fn to_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  fy[i] = f32(fx[i]);
}
