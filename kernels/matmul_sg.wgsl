enable subgroups;

// Matmul family, subgroup entry point (composed after matmul.wgsl, whose bindings, Params, grid_coords
// and store_rows it uses, and kernels/lib/bcast8.wgsl).
//
// blocked: like strip, but lane l loads row m0 + l%8 of A (4 k at a time) and every lane takes row i
// with subgroupBroadcast(…, i): one lane-varying load per row instead of a uniform load per lane.
// Needs a subgroup size ≥ 8 (lavapipe: 8; NVIDIA: 32).
// COLS = 2: each lane also holds column n + WG of a 2·WG-column tile, so every broadcast row of A feeds two
// columns (half the A loads and broadcasts per FMA); the host picks it when N spans more than one tile of WG.
override COLS: u32 = 1u;

// The two columns of lane `lid` in column tile gx (the second is used only when COLS = 2; stores check N).
fn lane_cols(gx: u32, lid: u32) -> vec2<u32> {
  let n = gx * WG * COLS + lid;
  return vec2<u32>(n, n + WG);
}

fn store_cols(cb: u32, m0: u32, n: vec2<u32>, acc: array<vec4<f32>, 4>) {
  store_rows(cb, m0, n.x, acc[0], acc[1]);
  if (COLS == 2u) { store_rows(cb, m0, n.y, acc[2], acc[3]); }
}

@compute @workgroup_size(WG)
fn blocked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
           @builtin(subgroup_invocation_id) sl: u32) {
  let g = grid_coords(wg.x + wg.y * nwg.x);
  if (g.z >= p.batch) { return; }
  let n = lane_cols(g.x, lid);
  let m0 = g.y * 8u;
  let ao = g.z * p.a_bs + min(m0 + sl % 8u, p.M - 1u) * p.sam;
  let bo0 = g.z * p.b_bs + min(n.x, p.N - 1u) * p.sbn;
  let bo1 = g.z * p.b_bs + min(n.y, p.N - 1u) * p.sbn;
  var acc = array<vec4<f32>, 4>();
  acc[0] = vec4<f32>(touch_bias());
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    let oa = ao + k * p.sak;
    let av = vec4<f32>(a[oa], a[oa + p.sak], a[oa + 2u * p.sak], a[oa + 3u * p.sak]);
    let o0 = bo0 + k * p.sbk;
    let o1 = bo1 + k * p.sbk;
    let b0 = vec4<f32>(b[o0], b[o0 + p.sbk], b[o0 + 2u * p.sbk], b[o0 + 3u * p.sbk]);
    var b1 = vec4<f32>(0.0);
    if (COLS == 2u) { b1 = vec4<f32>(b[o1], b[o1 + p.sbk], b[o1 + 2u * p.sbk], b[o1 + 3u * p.sbk]); }
    bcast8_acc2(av, b0, b1, &acc);
  }
  for (; k < p.K; k++) {
    let av = vec4<f32>(a[ao + k * p.sak], 0.0, 0.0, 0.0);
    let b0 = vec4<f32>(b[bo0 + k * p.sbk], 0.0, 0.0, 0.0);
    var b1 = vec4<f32>(0.0);
    if (COLS == 2u) { b1.x = b[bo1 + k * p.sbk]; }
    bcast8_acc2(av, b0, b1, &acc);
  }
  store_cols(g.z * p.M * p.N, m0, n, acc);
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
  let n = lane_cols(g.x, lid);
  let m0 = g.y * 8u;
  let ao = (g.z * p.a_bs + min(m0 + sl % 8u, p.M - 1u) * p.sam) / 4u;
  let bo0 = g.z * p.b_bs + min(n.x, p.N - 1u) * p.sbn;
  let bo1 = g.z * p.b_bs + min(n.y, p.N - 1u) * p.sbn;
  var acc = array<vec4<f32>, 4>();
  acc[0] = vec4<f32>(touch_bias());
  for (var k = 0u; k < p.K; k += 4u) {
    let o0 = bo0 + k * p.sbk;
    let o1 = bo1 + k * p.sbk;
    let b0 = vec4<f32>(b[o0], b[o0 + p.sbk], b[o0 + 2u * p.sbk], b[o0 + 3u * p.sbk]);
    var b1 = vec4<f32>(0.0);
    if (COLS == 2u) { b1 = vec4<f32>(b[o1], b[o1 + p.sbk], b[o1 + 2u * p.sbk], b[o1 + 3u * p.sbk]); }
    bcast8_acc2(av4[ao + k / 4u], b0, b1, &acc);
  }
  store_cols(g.z * p.M * p.N, m0, n, acc);
}

// blocked_vab: blocked_va with B read as vec4 too (B stored [N, K], i.e. transposed as nn.Linear's weight,
// with K and the batch stride multiples of 4; the host packs other layouts into it, src/tensor/plan/matmul.ts).
// ROWS = 16: every lane also loads row m0 + 8 + l%8, so each B load feeds 16 rows: four vec4 loads per 4 k for
// 128 multiply-adds instead of three for 64 (1.2–1.25× faster at 320–2048 rows, same-process A/B on lavapipe).
@group(0) @binding(2) var<storage, read> bv4: array<vec4<f32>>;
override ROWS: u32 = 8u;

@compute @workgroup_size(WG)
fn blocked_vab(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
               @builtin(subgroup_invocation_id) sl: u32) {
  let g = grid_coords(wg.x + wg.y * nwg.x);
  if (g.z >= p.batch) { return; }
  let n = lane_cols(g.x, lid);
  let m0 = g.y * ROWS;
  let ao = (g.z * p.a_bs + min(m0 + sl % 8u, p.M - 1u) * p.sam) / 4u;
  let ao2 = (g.z * p.a_bs + min(m0 + 8u + sl % 8u, p.M - 1u) * p.sam) / 4u;
  let bo0 = (g.z * p.b_bs + min(n.x, p.N - 1u) * p.sbn) / 4u;
  let bo1 = (g.z * p.b_bs + min(n.y, p.N - 1u) * p.sbn) / 4u;
  var acc = array<vec4<f32>, 4>();
  var acc2 = array<vec4<f32>, 4>();
  acc[0] = vec4<f32>(touch_bias());
  for (var k = 0u; k < p.K / 4u; k++) {
    let b0 = bv4[bo0 + k];
    var b1 = vec4<f32>(0.0);
    if (COLS == 2u) { b1 = bv4[bo1 + k]; }
    bcast8_acc2(av4[ao + k], b0, b1, &acc);
    if (ROWS == 16u) { bcast8_acc2(av4[ao2 + k], b0, b1, &acc2); }
  }
  store_cols(g.z * p.M * p.N, m0, n, acc);
  if (ROWS == 16u) { store_cols(g.z * p.M * p.N, m0 + 8u, n, acc2); }
}
