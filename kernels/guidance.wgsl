// Guidance family: classifier-free guidance and the DDIM update of a sampling step, elementwise over latents
// viewed as [B, per] (per = C·h·w), in one launch each instead of the slice/sub/scale/add and lincomb chains.
//   cfg        y = u + g·(c − u) with eps = [u; c] ([2B, per]: the unconditional half first, as diffusers)
//   cfg_bwd    d eps = [(1 − g)·dy; g·dy]
//   ddim_step  ε̂ = the guided (GUIDED) or raw eps; x̂0 = x0X·x + x0Out·ε̂; x_prev = meanX·x + meanOut·ε̂ (+ σ·z
//              with NOISE), the per-item scalars in coef[b] = (x0X, x0Out, meanX, meanOut, σ) (DDIMScheduler
//              stepScalars, clip_sample off).

override WG: u32 = 256u;
override GUIDED: bool = true;
override NOISE: bool = false;

struct Params {
  n: u32,   // B·per: elements of one half
  per: u32,
  g: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> ce: array<f32>;
@group(0) @binding(2) var<storage, read_write> cy: array<f32>;

@compute @workgroup_size(WG)
fn cfg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  let u = ce[i];
  cy[i] = u + p.g * (ce[p.n + i] - u);
}

@compute @workgroup_size(WG)
fn cfg_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  let d = ce[i]; // dy
  cy[i] = (1.0 - p.g) * d;
  cy[p.n + i] = p.g * d;
}

@group(0) @binding(1) var<storage, read> se: array<f32>;
@group(0) @binding(2) var<storage, read> sx: array<f32>;
@group(0) @binding(3) var<storage, read> scoef: array<f32>;
@group(0) @binding(4) var<storage, read> sz: array<f32>;
@group(0) @binding(5) var<storage, read_write> sx0: array<f32>;
@group(0) @binding(6) var<storage, read_write> sprev: array<f32>;

@compute @workgroup_size(WG)
fn ddim_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  var e = se[i];
  if (GUIDED) { e += p.g * (se[p.n + i] - e); }
  let b = i / p.per;
  let xv = sx[i];
  sx0[i] = scoef[5u * b] * xv + scoef[5u * b + 1u] * e;
  // z is always read (any buffer without NOISE) so its binding stays in the layout.
  let z = sz[min(i, arrayLength(&sz) - 1u)];
  sprev[i] = scoef[5u * b + 2u] * xv + scoef[5u * b + 3u] * e + select(0.0, scoef[5u * b + 4u] * z, NOISE);
}
