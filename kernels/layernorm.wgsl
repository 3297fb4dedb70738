// LayerNorm family over x viewed as [R, D] (normalise each row of D).
//   fwd / fwd_wg          y = (x − mean)·rstd·γ + β; saves mean[r], rstd[r]  (serial per row | workgroup per row)
//   bwd_dx / bwd_dx_wg    dx = rstd·(γ·dy − mean_d(γ·dy) − x̂·mean_d(γ·dy·x̂))
//   bwd_params            dγ[d] = Σ_r dy·x̂,  dβ[d] = Σ_r dy  (one invocation per column: coalesced)
// f32 accumulation, two-pass variance. Serial variants have no barriers (lavapipe); *_wg reduce in
// shared memory (GPUs).

override WG: u32 = 256u;

struct Params { rows: u32, d: u32, eps: f32, affine: u32 }

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read> fgamma: array<f32>;
@group(0) @binding(3) var<storage, read> fbeta: array<f32>;
@group(0) @binding(4) var<storage, read_write> fy: array<f32>;
@group(0) @binding(5) var<storage, read_write> fmean: array<f32>;
@group(0) @binding(6) var<storage, read_write> frstd: array<f32>;

// Without affine the γ/β bindings hold any buffer; values are read (keeping the bindings) and ignored.
fn gam(d: u32) -> f32 { return select(1.0, fgamma[min(d, arrayLength(&fgamma) - 1u)], p.affine != 0u); }
fn bet(d: u32) -> f32 { return select(0.0, fbeta[min(d, arrayLength(&fbeta) - 1u)], p.affine != 0u); }

@compute @workgroup_size(WG)
fn fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = linear_id(wg, nwg, lid);
  if (r >= p.rows) { return; }
  let base = r * p.d;
  var s = 0.0;
  for (var i = 0u; i < p.d; i++) { s += fx[base + i]; }
  let mean = s / f32(p.d);
  var q = 0.0;
  for (var i = 0u; i < p.d; i++) { let t = fx[base + i] - mean; q += t * t; }
  let rstd = inverseSqrt(q / f32(p.d) + p.eps);
  for (var i = 0u; i < p.d; i++) { fy[base + i] = (fx[base + i] - mean) * rstd * gam(i) + bet(i); }
  fmean[r] = mean;
  frstd[r] = rstd;
}

@compute @workgroup_size(WG)
fn fwd_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x + wg.y * nwg.x; // one workgroup per row
  let live = r < p.rows;
  let base = min(r, p.rows - 1u) * p.d;
  var s = 0.0;
  for (var i = lid; i < p.d; i += WG) { s += fx[base + i]; }
  let mean = wg_sum(s, lid) / f32(p.d);
  var q = 0.0;
  for (var i = lid; i < p.d; i += WG) { let t = fx[base + i] - mean; q += t * t; }
  let rstd = inverseSqrt(wg_sum(q, lid) / f32(p.d) + p.eps);
  if (!live) { return; }
  for (var i = lid; i < p.d; i += WG) { fy[base + i] = (fx[base + i] - mean) * rstd * gam(i) + bet(i); }
  if (lid == 0u) {
    fmean[r] = mean;
    frstd[r] = rstd;
  }
}

@group(0) @binding(1) var<storage, read> bx: array<f32>;
@group(0) @binding(2) var<storage, read> bdy: array<f32>;
@group(0) @binding(3) var<storage, read> bmean: array<f32>;
@group(0) @binding(4) var<storage, read> brstd: array<f32>;
@group(0) @binding(5) var<storage, read> bgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> bdx: array<f32>;

fn bgam(d: u32) -> f32 { return select(1.0, bgamma[min(d, arrayLength(&bgamma) - 1u)], p.affine != 0u); }

@compute @workgroup_size(WG)
fn bwd_dx(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = linear_id(wg, nwg, lid);
  if (r >= p.rows) { return; }
  let base = r * p.d;
  let mean = bmean[r];
  let rstd = brstd[r];
  var s1 = 0.0;
  var s2 = 0.0;
  for (var i = 0u; i < p.d; i++) {
    let g = bgam(i) * bdy[base + i];
    s1 += g;
    s2 += g * (bx[base + i] - mean) * rstd;
  }
  let m1 = s1 / f32(p.d);
  let m2 = s2 / f32(p.d);
  for (var i = 0u; i < p.d; i++) {
    let xhat = (bx[base + i] - mean) * rstd;
    bdx[base + i] = rstd * (bgam(i) * bdy[base + i] - m1 - xhat * m2);
  }
}

@compute @workgroup_size(WG)
fn bwd_dx_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x + wg.y * nwg.x;
  let live = r < p.rows;
  let rr = min(r, p.rows - 1u);
  let base = rr * p.d;
  let mean = bmean[rr];
  let rstd = brstd[rr];
  var s1 = 0.0;
  var s2 = 0.0;
  for (var i = lid; i < p.d; i += WG) {
    let g = bgam(i) * bdy[base + i];
    s1 += g;
    s2 += g * (bx[base + i] - mean) * rstd;
  }
  let m1 = wg_sum(s1, lid) / f32(p.d);
  let m2 = wg_sum(s2, lid) / f32(p.d);
  if (!live) { return; }
  for (var i = lid; i < p.d; i += WG) {
    let xhat = (bx[base + i] - mean) * rstd;
    bdx[base + i] = rstd * (bgam(i) * bdy[base + i] - m1 - xhat * m2);
  }
}

@group(0) @binding(1) var<storage, read> px: array<f32>;
@group(0) @binding(2) var<storage, read> pdy: array<f32>;
@group(0) @binding(3) var<storage, read> pmean: array<f32>;
@group(0) @binding(4) var<storage, read> prstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> pdgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> pdbeta: array<f32>;

@compute @workgroup_size(WG)
fn bwd_params(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let d = linear_id(wg, nwg, lid);
  if (d >= p.d) { return; }
  var s1 = 0.0;
  var s2 = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let g = pdy[r * p.d + d];
    s1 += g;
    s2 += g * (px[r * p.d + d] - pmean[r]) * prstd[r];
  }
  pdgamma[d] = s2;
  pdbeta[d] = s1;
}
