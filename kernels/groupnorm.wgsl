// GroupNorm family over x viewed as [N, C, S] (S = spatial size), G groups of CG = C/G channels.
// Each (n, g) block of L = CG·S values is contiguous. f32 accumulation, two-pass variance
// (mean first, then Σ(x−mean)²). An optional activation (ACT, a UNARY_* code: SiLU after the norm, as
// every diffusers resnet does) is fused: y = act(z), z = x̂·γ + β, and the backward kernels apply act'(z),
// recomputing z from x and the saved statistics.
//   fused_wg                   one dispatch: a workgroup per block reduces in shared memory, then writes y,
//                              mean and rstd (GPUs). groupnorm_sg.wgsl has the lavapipe twin, fused_sg.
//   stats / stats_wg           mean[n,g], rstd[n,g] = 1/sqrt(var + eps), Kahan-compensated serial sums
//                              (serial per block | workgroup per block): the unfused path (LPO_FUSE=0, and
//                              lavapipe when S is not a multiple of 4)
//   apply                      y = act((x − mean)·rstd·γ[c] + β[c])   (one invocation per element)
//   bwd_reduce / bwd_reduce_wg sdy[n,c] = Σ_s dz,  sdyx[n,c] = Σ_s dz·x̂   (dz = dy·act'(z))
//   bwd_group                  gs[n,g] = (Σ_{c∈g} γ[c]·sdy[n,c], Σ_{c∈g} γ[c]·sdyx[n,c])
//   bwd_dx                     dx = rstd·(γ·dz − gs.0/L − x̂·gs.1/L)
//   bwd_params                 dγ[c] = Σ_n sdyx[n,c],  dβ[c] = Σ_n sdy[n,c]
// The serial variants have no barriers (lavapipe); the *_wg variants reduce in shared memory (GPUs).

override WG: u32 = 256u;
override ACT: u32 = 0u; // UNARY_IDENTITY: no activation

struct Params {
  n: u32, c: u32, s: u32, groups: u32,
  cg: u32, eps: f32, affine: u32, total: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// ---------------------------------------------------------------- statistics

@group(0) @binding(1) var<storage, read> sx: array<f32>;
@group(0) @binding(2) var<storage, read_write> smean: array<f32>;
@group(0) @binding(3) var<storage, read_write> srstd: array<f32>;

@compute @workgroup_size(WG)
fn stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = linear_id(wg, nwg, lid);
  if (b >= p.n * p.groups) { return; }
  let len = p.cg * p.s;
  let base = b * len;
  let one = kahan_one(nwg);
  var acc = vec2<f32>(0.0);
  for (var i = 0u; i < len; i++) { acc = kahan_add(acc, sx[base + i], one); }
  let mean = acc.x / f32(len);
  acc = vec2<f32>(0.0);
  for (var i = 0u; i < len; i++) {
    let d = sx[base + i] - mean;
    acc = kahan_add(acc, d * d, one);
  }
  let s = acc.x;
  smean[b] = mean;
  srstd[b] = inverseSqrt(s / f32(len) + p.eps);
}

@compute @workgroup_size(WG)
fn stats_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wg.x + wg.y * nwg.x; // one workgroup per (n, g): uniform
  let len = p.cg * p.s;
  let base = b * len;
  let live = b < p.n * p.groups;
  var s = 0.0;
  if (live) { for (var i = lid; i < len; i += WG) { s += sx[base + i]; } }
  let mean = wg_sum(s, lid) / f32(len);
  var q = 0.0;
  if (live) { for (var i = lid; i < len; i += WG) { let d = sx[base + i] - mean; q += d * d; } }
  let var_ = wg_sum(q, lid) / f32(len);
  if (live && lid == 0u) {
    smean[b] = mean;
    srstd[b] = inverseSqrt(var_ + p.eps);
  }
}

// γ[c] and β[c], or 1 and 0 without affine (the bindings then hold any buffer; read to keep them bound).
fn gamma_beta(g: ptr<storage, array<f32>, read>, b: ptr<storage, array<f32>, read>, c: u32) -> vec2<f32> {
  let gv = (*g)[min(c, arrayLength(g) - 1u)];
  let bv = (*b)[min(c, arrayLength(b) - 1u)];
  return select(vec2<f32>(1.0, 0.0), vec2<f32>(gv, bv), p.affine != 0u);
}

// act'(z)·dy with z = x̂·γ + β (dy itself without an activation).
fn act_back(dy: f32, xhat: f32, gb: vec2<f32>) -> f32 {
  if (ACT == UNARY_IDENTITY) { return dy; }
  return dy * unary_grad_fn(ACT, xhat * gb.x + gb.y, 1.0, 0.0);
}

@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read> fgamma: array<f32>;
@group(0) @binding(3) var<storage, read> fbeta: array<f32>;
@group(0) @binding(4) var<storage, read_write> fy: array<f32>;
@group(0) @binding(5) var<storage, read_write> fmean: array<f32>;
@group(0) @binding(6) var<storage, read_write> frstd: array<f32>;

@compute @workgroup_size(WG)
fn fused_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wg.x + wg.y * nwg.x; // one workgroup per (n, g): uniform
  let live = b < p.n * p.groups;
  let len = p.cg * p.s;
  let base = b * len;
  var s = 0.0;
  if (live) { for (var i = lid; i < len; i += WG) { s += fx[base + i]; } }
  let mean = wg_sum(s, lid) / f32(len);
  var q = 0.0;
  if (live) { for (var i = lid; i < len; i += WG) { let d = fx[base + i] - mean; q += d * d; } }
  let rstd = inverseSqrt(wg_sum(q, lid) / f32(len) + p.eps);
  if (!live) { return; }
  if (lid == 0u) {
    fmean[b] = mean;
    frstd[b] = rstd;
  }
  let c0 = (b % p.groups) * p.cg;
  for (var i = lid; i < len; i += WG) {
    let gb = gamma_beta(&fgamma, &fbeta, c0 + i / p.s);
    fy[base + i] = unary_fn(ACT, (fx[base + i] - mean) * rstd * gb.x + gb.y, 1.0, 0.0);
  }
}

// ---------------------------------------------------------------- y = act(x̂·γ + β)

@group(0) @binding(1) var<storage, read> ax: array<f32>;
@group(0) @binding(2) var<storage, read> amean: array<f32>;
@group(0) @binding(3) var<storage, read> arstd: array<f32>;
@group(0) @binding(4) var<storage, read> agamma: array<f32>;
@group(0) @binding(5) var<storage, read> abeta: array<f32>;
@group(0) @binding(6) var<storage, read_write> ay: array<f32>;

// One invocation per element over a flat grid. (A grid of [S / WG, N·C] made the plane's statistics uniform
// loads, but left 3/4 of each workgroup idle at the toy U-Net's S = 64 and 15/16 at S = 16.)
@compute @workgroup_size(WG)
fn apply(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.total) { return; }
  let nc = i / p.s;
  let c = nc % p.c;
  let b = (nc / p.c) * p.groups + c / p.cg;
  let gb = gamma_beta(&agamma, &abeta, c);
  let rstd = arstd[b];
  ay[i] = unary_fn(ACT, (ax[i] - amean[b]) * rstd * gb.x + gb.y, 1.0, 0.0);
}

// ---------------------------------------------------------------- backward

@group(0) @binding(1) var<storage, read> rx: array<f32>;
@group(0) @binding(2) var<storage, read> rdy: array<f32>;
@group(0) @binding(3) var<storage, read> rmean: array<f32>;
@group(0) @binding(4) var<storage, read> rrstd: array<f32>;
@group(0) @binding(5) var<storage, read> rgamma: array<f32>;
@group(0) @binding(6) var<storage, read> rbeta: array<f32>;
@group(0) @binding(7) var<storage, read_write> rsdy: array<f32>;
@group(0) @binding(8) var<storage, read_write> rsdyx: array<f32>;

@compute @workgroup_size(WG)
fn bwd_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let nc = linear_id(wg, nwg, lid);
  if (nc >= p.n * p.c) { return; }
  let b = (nc / p.c) * p.groups + (nc % p.c) / p.cg;
  let gb = gamma_beta(&rgamma, &rbeta, nc % p.c);
  let mean = rmean[b];
  let rstd = rrstd[b];
  let base = nc * p.s;
  let one = kahan_one(nwg);
  var a1 = vec2<f32>(0.0);
  var a2 = vec2<f32>(0.0);
  for (var i = 0u; i < p.s; i++) {
    let xhat = (rx[base + i] - mean) * rstd;
    let d = act_back(rdy[base + i], xhat, gb);
    a1 = kahan_add(a1, d, one);
    a2 = kahan_add(a2, d * xhat, one);
  }
  rsdy[nc] = a1.x;
  rsdyx[nc] = a2.x;
}

@compute @workgroup_size(WG)
fn bwd_reduce_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let nc = wg.x + wg.y * nwg.x; // one workgroup per (n, c)
  let live = nc < p.n * p.c;
  let ncc = min(nc, p.n * p.c - 1u);
  let b = (ncc / p.c) * p.groups + (ncc % p.c) / p.cg;
  let gb = gamma_beta(&rgamma, &rbeta, ncc % p.c);
  let mean = rmean[b];
  let rstd = rrstd[b];
  let base = ncc * p.s;
  var s1 = 0.0;
  var s2 = 0.0;
  if (live) {
    for (var i = lid; i < p.s; i += WG) {
      let xhat = (rx[base + i] - mean) * rstd;
      let d = act_back(rdy[base + i], xhat, gb);
      s1 += d;
      s2 += d * xhat;
    }
  }
  let t1 = wg_sum(s1, lid);
  let t2 = wg_sum(s2, lid);
  if (live && lid == 0u) {
    rsdy[nc] = t1;
    rsdyx[nc] = t2;
  }
}

@group(0) @binding(1) var<storage, read> ggamma: array<f32>;
@group(0) @binding(2) var<storage, read> gsdy: array<f32>;
@group(0) @binding(3) var<storage, read> gsdyx: array<f32>;
@group(0) @binding(4) var<storage, read_write> ggs: array<f32>;

@compute @workgroup_size(WG)
fn bwd_group(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = linear_id(wg, nwg, lid);
  if (b >= p.n * p.groups) { return; }
  let n = b / p.groups;
  let c0 = (b % p.groups) * p.cg;
  var s1 = 0.0;
  var s2 = 0.0;
  for (var j = 0u; j < p.cg; j++) {
    let c = c0 + j;
    let g = select(1.0, ggamma[min(c, arrayLength(&ggamma) - 1u)], p.affine != 0u);
    s1 += g * gsdy[n * p.c + c];
    s2 += g * gsdyx[n * p.c + c];
  }
  ggs[2u * b] = s1;
  ggs[2u * b + 1u] = s2;
}

@group(0) @binding(1) var<storage, read> dx_x: array<f32>;
@group(0) @binding(2) var<storage, read> dx_dy: array<f32>;
@group(0) @binding(3) var<storage, read> dx_mean: array<f32>;
@group(0) @binding(4) var<storage, read> dx_rstd: array<f32>;
@group(0) @binding(5) var<storage, read> dx_gamma: array<f32>;
@group(0) @binding(6) var<storage, read> dx_beta: array<f32>;
@group(0) @binding(7) var<storage, read> dx_gs: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx_out: array<f32>;

// One invocation per element, flat as apply (a grid of [S / WG, N·C] would leave most lanes idle at S = 16 or 64).
@compute @workgroup_size(WG)
fn bwd_dx(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.total) { return; }
  let nc = i / p.s;
  let c = nc % p.c;
  let b = (nc / p.c) * p.groups + c / p.cg;
  let gb = gamma_beta(&dx_gamma, &dx_beta, c);
  let rstd = dx_rstd[b];
  let inv_len = 1.0 / f32(p.cg * p.s);
  let s1 = dx_gs[2u * b] * inv_len;
  let s2 = dx_gs[2u * b + 1u] * inv_len;
  let xhat = (dx_x[i] - dx_mean[b]) * rstd;
  dx_out[i] = rstd * (gb.x * act_back(dx_dy[i], xhat, gb) - s1 - xhat * s2);
}

@group(0) @binding(1) var<storage, read> psdy: array<f32>;
@group(0) @binding(2) var<storage, read> psdyx: array<f32>;
@group(0) @binding(3) var<storage, read_write> pdgamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> pdbeta: array<f32>;

@compute @workgroup_size(WG)
fn bwd_params(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = linear_id(wg, nwg, lid);
  if (c >= p.c) { return; }
  var s1 = 0.0;
  var s2 = 0.0;
  for (var n = 0u; n < p.n; n++) {
    s1 += psdy[n * p.c + c];
    s2 += psdyx[n * p.c + c];
  }
  pdgamma[c] = s2;
  pdbeta[c] = s1;
}
