// Reductions over one axis of a tensor viewed as [outer, len, inner]: sum, mean, max.
// One invocation per output element with a serial loop: no barriers, which suits lavapipe and is
// coalesced on GPUs when inner > 1 (neighbouring invocations read neighbouring addresses).

override OP: u32 = 0u; // REDUCE_SUM, REDUCE_MEAN or REDUCE_MAX (src/gpu/opcodes.ts)
override WG: u32 = 256u;

struct Params { outer: u32, len: u32, inner: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn reduce_axis(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let o = linear_id(wg, nwg, lid);
  if (o >= p.outer * p.inner) { return; }
  let base = (o / p.inner) * p.len * p.inner + o % p.inner;
  if (OP == REDUCE_MAX) {
    var m = x[base];
    for (var k = 1u; k < p.len; k++) { m = max(m, x[base + k * p.inner]); }
    y[o] = m;
    return;
  }
  // Kahan-compensated sum: long axes (a 4096-pixel spatial mean) stay accurate in f32.
  let one = kahan_one(nwg);
  var acc = vec2<f32>(0.0);
  for (var k = 0u; k < p.len; k++) { acc = kahan_add(acc, x[base + k * p.inner], one); }
  y[o] = select(acc.x, acc.x / f32(p.len), OP == REDUCE_MEAN);
}
