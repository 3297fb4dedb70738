// AdamW (torch.optim.AdamW semantics, as llm.c's fused kernel): one invocation per element,
// binding param, grad, m, v (param/m/v read_write, each bound once). Plus the global gradient
// norm (per-buffer partial sums of squares, then one final sum) and in-place clipping that reads
// the norm from the GPU (no host round trip).

override WG: u32 = 256u;

struct Params {
  n: u32,
  decay: f32,      // 1 − lr·weight_decay
  beta1: f32,
  beta2: f32,
  step_size: f32,  // lr / (1 − beta1^t)
  bc2_sqrt: f32,   // sqrt(1 − beta2^t)
  eps: f32,
  slot: u32,       // gradNorm: this buffer's row in the partials; clip: unused
  max_norm: f32,   // clip
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;

@compute @workgroup_size(WG)
fn adamw_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  let g = grad[i];
  let m = p.beta1 * m1[i] + (1.0 - p.beta1) * g;
  let v = p.beta2 * m2[i] + (1.0 - p.beta2) * g * g;
  m1[i] = m;
  m2[i] = v;
  // torch: param.mul_(1 − lr·wd); param.addcdiv_(m, v.sqrt() / bc2_sqrt + eps, value = −step_size)
  let x = param[i] * p.decay;
  param[i] = x - p.step_size * (m / (sqrt(v) / p.bc2_sqrt + p.eps));
}

// Partial sums of squares: invocation t of NT sums elements t, t + NT, … (coalesced on GPUs).
override NT: u32 = 256u;

@group(0) @binding(1) var<storage, read> sg: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(WG)
fn sumsq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = linear_id(wg, nwg, lid);
  if (t >= NT) { return; }
  let one = kahan_one(nwg);
  var acc = vec2<f32>(0.0);
  for (var i = t; i < p.n; i += NT) { acc = kahan_add(acc, sg[i] * sg[i], one); }
  partials[p.slot * NT + t] = acc.x;
}

// norm = sqrt(Σ partials): one invocation, serial (deterministic).
@group(0) @binding(1) var<storage, read> fp: array<f32>;
@group(0) @binding(2) var<storage, read_write> fnorm: array<f32>;

@compute @workgroup_size(1)
fn finish_norm(@builtin(num_workgroups) nwg: vec3<u32>) {
  let one = kahan_one(nwg);
  var acc = vec2<f32>(0.0);
  for (var i = 0u; i < p.n; i++) { acc = kahan_add(acc, fp[i], one); }
  fnorm[0] = sqrt(acc.x);
}

// g *= min(max_norm / (norm + 1e-6), 1)  (torch.nn.utils.clip_grad_norm_)
@group(0) @binding(1) var<storage, read> cnorm: array<f32>;
@group(0) @binding(2) var<storage, read_write> cg: array<f32>;

@compute @workgroup_size(WG)
fn clip(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  let coef = min(p.max_norm / (cnorm[0] + 1e-6), 1.0);
  cg[i] = cg[i] * coef;
}
