enable subgroups;

// GroupNorm family, subgroup entry point (composed after groupnorm.wgsl, whose Params, ACT, gamma_beta
// and bindings layout it shares).
//
// fused_sg (lavapipe): the whole forward in one dispatch, no barriers. One workgroup of WG lanes (WG ≤ the
// subgroup size, so the workgroup is one subgroup) per (n, g) block; the lanes stride over the block in vec4s
// (S must be a multiple of 4, so a vec4 never crosses a channel), subgroupAdd totals the two passes (mean,
// then Σ(x − mean)²), and the lanes write y = act((x − mean)·rstd·γ + β) channel by channel, where γ, β and the
// statistics are uniform. The blocks are the parallelism: N·G workgroups (64 for SD at batch 2), each
// streaming its block (L = CG·S values) twice from cache (statistics, then the output). The two-pass serial `stats` kernel this
// replaces gave one lane per block and scalar loads (0.29 GB/s at [2, 320, 64, 64]).

@group(0) @binding(1) var<storage, read> vx: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> vgamma: array<f32>;
@group(0) @binding(3) var<storage, read> vbeta: array<f32>;
@group(0) @binding(4) var<storage, read_write> vy: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> vmean: array<f32>;
@group(0) @binding(6) var<storage, read_write> vrstd: array<f32>;

fn act4(v: vec4<f32>) -> vec4<f32> {
  if (ACT == UNARY_IDENTITY) { return v; }
  return vec4<f32>(unary_fn(ACT, v.x, 1.0, 0.0), unary_fn(ACT, v.y, 1.0, 0.0), unary_fn(ACT, v.z, 1.0, 0.0), unary_fn(ACT, v.w, 1.0, 0.0));
}

@compute @workgroup_size(WG)
fn fused_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wg.x + wg.y * nwg.x; // one workgroup (= one subgroup) per (n, g): uniform
  if (b >= p.n * p.groups) { return; }
  let sv = p.s / 4u;           // vec4s per channel plane
  let len = p.cg * sv;
  let base = b * len;
  // Both statistics in one read of the block (one read fewer than mean, then Σ(x − mean)²): each lane keeps
  // Welford's running mean and M2 for its 4 components, and the lanes' results combine exactly by Chan's
  // formula, M2 = Σ M2_i + Σ n_i·(mean_i − mean)². Unlike Σx² − (Σx)²/L it loses no digits when |mean| ≫ σ.
  var cnt = 0.0;
  var m = vec4<f32>(0.0);
  var m2 = vec4<f32>(0.0);
  for (var i = lid; i < len; i += WG) {
    cnt += 1.0;
    let v = vx[base + i];
    let d = v - m;
    m += d * (1.0 / cnt);
    m2 += d * (v - m);
  }
  let mean = subgroupAdd(cnt * (m.x + m.y + m.z + m.w)) / f32(len * 4u);
  let dm = m - mean;
  let spread = m2.x + m2.y + m2.z + m2.w + cnt * dot(dm, dm);
  let rstd = inverseSqrt(subgroupAdd(spread) / f32(len * 4u) + p.eps);
  if (lid == 0u) {
    vmean[b] = mean;
    vrstd[b] = rstd;
  }
  let c0 = (b % p.groups) * p.cg;
  for (var j = 0u; j < p.cg; j++) {
    let gb = gamma_beta(&vgamma, &vbeta, c0 + j);
    let scale = rstd * gb.x;
    let row = base + j * sv;
    for (var i = lid; i < sv; i += WG) { vy[row + i] = act4((vx[row + i] - mean) * scale + gb.y); }
  }
}
