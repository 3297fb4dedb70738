enable subgroups;

// Matmul family, subgroup entry point (composed after matmul.wgsl, whose bindings, Params, grid_coords
// and store_rows it uses).
//
// blocked: like strip, but lane l loads row m0 + l%8 of A (4 k at a time) and every lane takes row i
// with subgroupBroadcast(…, i): one lane-varying load per row instead of a uniform load per lane.
// Needs a subgroup size ≥ 8 (lavapipe: 8; NVIDIA: 32).
@compute @workgroup_size(WG)
fn blocked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
           @builtin(subgroup_invocation_id) sl: u32) {
  let g = grid_coords(wg.x + wg.y * nwg.x);
  if (g.z >= p.batch) { return; }
  let n = g.x * WG + lid;
  let m0 = g.y * 8u;
  let ao = g.z * p.a_bs + min(m0 + sl % 8u, p.M - 1u) * p.sam;
  let bo = g.z * p.b_bs + min(n, p.N - 1u) * p.sbn;
  var lo = vec4<f32>(touch_bias());
  var hi = vec4<f32>(0.0);
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    let oa = ao + k * p.sak;
    let av = vec4<f32>(a[oa], a[oa + p.sak], a[oa + 2u * p.sak], a[oa + 3u * p.sak]);
    let ob = bo + k * p.sbk;
    let bv = vec4<f32>(b[ob], b[ob + p.sbk], b[ob + 2u * p.sbk], b[ob + 3u * p.sbk]);
    lo.x += dot(subgroupBroadcast(av, 0u), bv);
    lo.y += dot(subgroupBroadcast(av, 1u), bv);
    lo.z += dot(subgroupBroadcast(av, 2u), bv);
    lo.w += dot(subgroupBroadcast(av, 3u), bv);
    hi.x += dot(subgroupBroadcast(av, 4u), bv);
    hi.y += dot(subgroupBroadcast(av, 5u), bv);
    hi.z += dot(subgroupBroadcast(av, 6u), bv);
    hi.w += dot(subgroupBroadcast(av, 7u), bv);
  }
  for (; k < p.K; k++) {
    let av = a[ao + k * p.sak];
    let bv = b[bo + k * p.sbk];
    lo += vec4<f32>(subgroupBroadcast(av, 0u), subgroupBroadcast(av, 1u), subgroupBroadcast(av, 2u), subgroupBroadcast(av, 3u)) * bv;
    hi += vec4<f32>(subgroupBroadcast(av, 4u), subgroupBroadcast(av, 5u), subgroupBroadcast(av, 6u), subgroupBroadcast(av, 7u)) * bv;
  }
  store_rows(g.z * p.M * p.N, m0, n, lo, hi);
}

// blocked_va: blocked with A read as vec4 (A row-major with K, the row stride and the batch stride multiples of
// 4): lane l fetches its row's 4 k in one 16-byte load instead of 4 scalar ones (lavapipe scalarises
// lane-varying loads, so the load count is most of the cost).
@group(0) @binding(1) var<storage, read> av4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn blocked_va(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
              @builtin(subgroup_invocation_id) sl: u32) {
  let g = grid_coords(wg.x + wg.y * nwg.x);
  if (g.z >= p.batch) { return; }
  let n = g.x * WG + lid;
  let m0 = g.y * 8u;
  let ao = (g.z * p.a_bs + min(m0 + sl % 8u, p.M - 1u) * p.sam) / 4u;
  let bo = g.z * p.b_bs + min(n, p.N - 1u) * p.sbn;
  var lo = vec4<f32>(touch_bias());
  var hi = vec4<f32>(0.0);
  for (var k = 0u; k < p.K; k += 4u) {
    let av = av4[ao + k / 4u];
    let ob = bo + k * p.sbk;
    let bv = vec4<f32>(b[ob], b[ob + p.sbk], b[ob + 2u * p.sbk], b[ob + 3u * p.sbk]);
    lo.x += dot(subgroupBroadcast(av, 0u), bv);
    lo.y += dot(subgroupBroadcast(av, 1u), bv);
    lo.z += dot(subgroupBroadcast(av, 2u), bv);
    lo.w += dot(subgroupBroadcast(av, 3u), bv);
    hi.x += dot(subgroupBroadcast(av, 4u), bv);
    hi.y += dot(subgroupBroadcast(av, 5u), bv);
    hi.z += dot(subgroupBroadcast(av, 6u), bv);
    hi.w += dot(subgroupBroadcast(av, 7u), bv);
  }
  store_rows(g.z * p.M * p.N, m0, n, lo, hi);
}

// blocked_vab: blocked_va with B read as vec4 too (B stored [N, K], i.e. transposed as nn.Linear's weight,
// with K and the batch stride multiples of 4).
@group(0) @binding(2) var<storage, read> bv4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn blocked_vab(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
               @builtin(subgroup_invocation_id) sl: u32) {
  let g = grid_coords(wg.x + wg.y * nwg.x);
  if (g.z >= p.batch) { return; }
  let n = g.x * WG + lid;
  let m0 = g.y * 8u;
  let ao = (g.z * p.a_bs + min(m0 + sl % 8u, p.M - 1u) * p.sam) / 4u;
  let bo = (g.z * p.b_bs + min(n, p.N - 1u) * p.sbn) / 4u;
  var lo = vec4<f32>(touch_bias());
  var hi = vec4<f32>(0.0);
  for (var k = 0u; k < p.K / 4u; k++) {
    let av = av4[ao + k];
    let bv = bv4[bo + k];
    lo.x += dot(subgroupBroadcast(av, 0u), bv);
    lo.y += dot(subgroupBroadcast(av, 1u), bv);
    lo.z += dot(subgroupBroadcast(av, 2u), bv);
    lo.w += dot(subgroupBroadcast(av, 3u), bv);
    hi.x += dot(subgroupBroadcast(av, 4u), bv);
    hi.y += dot(subgroupBroadcast(av, 5u), bv);
    hi.z += dot(subgroupBroadcast(av, 6u), bv);
    hi.w += dot(subgroupBroadcast(av, 7u), bv);
  }
  store_rows(g.z * p.M * p.N, m0, n, lo, hi);
}
