// Step-DPO (SPO/LPO) loss with clamped ratios, forward and gradient in one kernel.
//   r = clamp(exp(logp_policy − logp_ref), 1 − eps, 1 + eps)   (for the winner w and the loser l)
//   x = β·log r_w − β·log r_l ;  loss = mean_p softplus(−x) = −mean log σ(x)
// d loss / d logp_policy_w = −σ(−x)·β/P where r_w is in the band, else exactly 0 (torch.clamp's
// gradient passes only inside [lo, hi], bounds included); ref = −policy; loser: the sign flips.
//
// Invocation p writes the four gradients of pair p; invocation 0 also sums the loss over all
// pairs serially (Kahan), so the value is deterministic.

override WG: u32 = 64u;

struct Params {
  P: u32,
  beta: f32,
  lo: f32,      // 1 − eps
  hi: f32,      // 1 + eps
  log_lo: f32,  // log(1 − eps), from the host in float64
  log_hi: f32,
  slot: u32,    // dpo_scale: which input's gradient row
}

@group(0) @binding(0) var<uniform> p: Params;

// log σ's complement, softplus(z) = log(1 + e^z), without overflow or cancellation.
fn softplus(z: f32) -> f32 {
  let e = exp(-abs(z));
  let u = 1.0 + e;
  // log1p(e): exact where 1 + e rounds to 1.
  let l1p = select(log(u) * (e / (u - 1.0)), e, u == 1.0);
  return max(z, 0.0) + l1p;
}

fn sigmoid(z: f32) -> f32 {
  if (z >= 0.0) { return 1.0 / (1.0 + exp(-z)); }
  let e = exp(z);
  return e / (1.0 + e);
}

struct Pair { x: f32, in_w: f32, in_l: f32 }

fn pair(i: u32) -> Pair {
  let dw = pw[i] - rw[i];
  let dl = pl[i] - rl[i];
  let ew = exp(dw);
  let el = exp(dl);
  let in_w = ew >= p.lo && ew <= p.hi;
  let in_l = el >= p.lo && el <= p.hi;
  // log r: the exact difference inside the band, the log of the bound outside it.
  let lw = select(select(p.log_hi, p.log_lo, ew < p.lo), dw, in_w);
  let ll = select(select(p.log_hi, p.log_lo, el < p.lo), dl, in_l);
  return Pair(p.beta * (lw - ll), select(0.0, 1.0, in_w), select(0.0, 1.0, in_l));
}

@group(0) @binding(1) var<storage, read> pw: array<f32>;
@group(0) @binding(2) var<storage, read> rw: array<f32>;
@group(0) @binding(3) var<storage, read> pl: array<f32>;
@group(0) @binding(4) var<storage, read> rl: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad: array<f32>; // [4, P]: policy_w, ref_w, policy_l, ref_l

@compute @workgroup_size(WG)
fn dpo_loss(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.P) { return; }
  let a = pair(i);
  let g = -sigmoid(-a.x) * p.beta / f32(p.P);
  grad[i] = g * a.in_w;
  grad[p.P + i] = -g * a.in_w;
  grad[2u * p.P + i] = -g * a.in_l;
  grad[3u * p.P + i] = g * a.in_l;
  if (i == 0u) {
    let one = kahan_one(nwg);
    var acc = vec2<f32>(0.0);
    for (var k = 0u; k < p.P; k++) { acc = kahan_add(acc, softplus(-pair(k).x), one); }
    loss[0] = acc.x / f32(p.P);
  }
}

// out = grad[slot] · dy (the chain rule with the upstream scalar gradient).
@group(0) @binding(1) var<storage, read> sg: array<f32>;
@group(0) @binding(2) var<storage, read> sdy: array<f32>;
@group(0) @binding(3) var<storage, read_write> sout: array<f32>;

@compute @workgroup_size(WG)
fn dpo_scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.P) { return; }
  sout[i] = sg[p.slot * p.P + i] * sdy[0];
}
