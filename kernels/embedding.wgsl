// Embedding lookup and its deterministic, atomic-free backward.
//   forward : out[n, d] = table[ids[n], d]  (ids out of [0, V) give zeros)
//   backward: dtable[v, d] = Σ_{n: ids[n] = v} dy[n, d]. The host zero-fills dtable; then one
//             invocation per (n, d) whose n is the first occurrence of its id sums every
//             occurrence in index order and writes the row once. O(N²·D) in the worst case,
//             fine for token sequences (N ≤ a few thousand); no atomics, bit-reproducible.

override WG: u32 = 256u;

struct Params { N: u32, D: u32, V: u32 }

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> fids: array<i32>;
@group(0) @binding(2) var<storage, read> ftable: array<f32>;
@group(0) @binding(3) var<storage, read_write> fout: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.N * p.D) { return; }
  let n = i / p.D;
  let d = i % p.D;
  let id = fids[n];
  if (id < 0 || u32(id) >= p.V) {
    fout[i] = 0.0;
    return;
  }
  fout[i] = ftable[u32(id) * p.D + d];
}

@group(0) @binding(1) var<storage, read> bids: array<i32>;
@group(0) @binding(2) var<storage, read> bdy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bdt: array<f32>;

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  if (i >= p.N * p.D) { return; }
  let n = i / p.D;
  let d = i % p.D;
  let id = bids[n];
  if (id < 0 || u32(id) >= p.V) { return; }
  for (var k = 0u; k < n; k++) {
    if (bids[k] == id) { return; } // an earlier occurrence owns this row
  }
  var s = 0.0;
  for (var k = n; k < p.N; k++) {
    if (bids[k] == id) { s += bdy[k * p.D + d]; }
  }
  bdt[u32(id) * p.D + d] = s;
}
