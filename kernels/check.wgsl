// Debug check (LPO_CHECK_FINITE=1): flags[slot] = 1 when any of the n f32 values of x is NaN or ±Inf.
// Reads the bits (exponent all ones), so a compiler that assumes no NaN cannot fold the test away.

override WG: u32 = 256u;

struct Params { n: u32, slot: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> flags: array<u32>;

@compute @workgroup_size(WG)
fn finite(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.n) { return; }
  if ((x[i] & 0x7f800000u) == 0x7f800000u) { flags[p.slot] = 1u; }
}
