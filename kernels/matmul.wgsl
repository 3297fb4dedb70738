// Matmul family: C[b] = act(op(A[b]) · op(B[b]) + bias), op = identity or transpose.
//
// A is addressed as (m, k) ↦ a_base + m·sam + k·sak and B as (k, n) ↦ b_base + k·sbk + n·sbn, so the
// transposed layouts are only different strides; a_bs / b_bs are the batch strides (0 when broadcast).
// C is contiguous [batch, M, N].
//
// Variants (entry points):
//   naive      one output per invocation, serial k loop (the baseline the bench compares against).
//   strip      no barriers, no subgroups: lanes along N, 8 rows per lane (A index subgroup-uniform).
//   splitk_reduce  adds split-K partial sums and applies the epilogue.
//   pack_rows  copies an operand into k-contiguous rows for blocked_vab (lavapipe; see below).
//   gemm128 / gemm128x64 / gemm64   (matmul_gemm.wgsl) SGEMM with 256 invocations, 128×128 / 128×64 /
//              64×64 tiles, double-buffered k slices, optional split-K.
//   blocked    (matmul_sg.wgsl, needs subgroups): no barriers; each lane loads one of 8 rows of A (4 k
//              at a time) and the other lanes get it with subgroupBroadcast; lanes along N. The fastest
//              shape on lavapipe (see shared/docs/PERF-ANCHORS.md §5.3).
// The host composes this file with matmul_gemm.wgsl or matmul_sg.wgsl for those variants (src/gpu/wgsl.ts).
//
// Epilogue (every variant): c = act(acc + bias) + res, with bias [N] per column or, BIAS_ROWS, [M] per row
// (a 1x1 conv written as W·Xᵀ), and res a residual of C's shape (HAS_RES; a transformer's skip connection).

override WG: u32 = 64u;        // naive / strip / blocked invocations per workgroup
override ACT: u32 = 0u;        // a UNARY_* code (src/gpu/opcodes.ts): UNARY_IDENTITY for none
override HAS_BIAS: bool = false;
override BIAS_ROWS: bool = false;
override HAS_RES: bool = false;

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  sam: u32, sak: u32, sbk: u32, sbn: u32,
  a_bs: u32, b_bs: u32, grid_m: u32, grid_n: u32,
  kc: u32, splits: u32,  // gemm split-K: k chunk per slice, slices per batch entry (1: no split)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;

// Bias, activation (kernels/lib/unary.wgsl), residual, for the output at flat index i (column n).
fn epilogue(v: f32, n: u32, i: u32) -> f32 {
  var x = v;
  if (HAS_BIAS) { x += bias[select(n, (i / p.N) % p.M, BIAS_ROWS)]; }
  x = unary_fn(ACT, x, 1.0, 0.0);
  if (HAS_RES) { x += res[i]; }
  return x;
}

fn touch_bias() -> f32 {
  // Keeps `bias` and `res` in every entry point's auto layout when unused (the host binds a dummy).
  return select(0.0, bias[0] + res[0], (HAS_BIAS || HAS_RES) && p.N == 0u);
}

// ---------------------------------------------------------------------------------------- naive
@compute @workgroup_size(WG)
fn naive(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  let mn = p.M * p.N;
  if (i >= mn * p.batch) { return; }
  let bt = i / mn;
  let r = i % mn;
  let m = r / p.N;
  let n = r % p.N;
  let ab = bt * p.a_bs + m * p.sam;
  let bb = bt * p.b_bs + n * p.sbn;
  var s = touch_bias();
  for (var k = 0u; k < p.K; k++) {
    s += a[ab + k * p.sak] * b[bb + k * p.sbk];
  }
  c[i] = epilogue(s, n, i);
}

// Stores 4 consecutive outputs of row `row` (a flat index), applying the epilogue, bounds-checked on N.
fn store4(row: u32, nb: u32, v: vec4<f32>) {
  let i = row + nb;
  if (nb + 3u < p.N) {
    c[i] = epilogue(v.x, nb, i);
    c[i + 1u] = epilogue(v.y, nb + 1u, i + 1u);
    c[i + 2u] = epilogue(v.z, nb + 2u, i + 2u);
    c[i + 3u] = epilogue(v.w, nb + 3u, i + 3u);
    return;
  }
  if (nb < p.N) { c[i] = epilogue(v.x, nb, i); }
  if (nb + 1u < p.N) { c[i + 1u] = epilogue(v.y, nb + 1u, i + 1u); }
  if (nb + 2u < p.N) { c[i + 2u] = epilogue(v.z, nb + 2u, i + 2u); }
}

// ---------------------------------------------------------------------------------------- strip
// Workgroup t covers rows 8·gm .. 8·gm+7 and columns WG·gn .. WG·gn+WG-1 of batch bt; A's address
// depends only on the workgroup and the loop counter (subgroup-uniform), B's on the lane.
fn grid_coords(t: u32) -> vec3<u32> {
  let gn = t % p.grid_n;
  let rest = t / p.grid_n;
  return vec3<u32>(gn, rest % p.grid_m, rest / p.grid_m);
}

fn store_rows(cb: u32, m0: u32, n: u32, lo: vec4<f32>, hi: vec4<f32>) {
  if (n >= p.N) { return; }
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + i;
    if (m >= p.M) { return; }
    let v = select(hi[i & 3u], lo[i & 3u], i < 4u);
    let o = cb + m * p.N + n;
    c[o] = epilogue(v, n, o);
  }
}

fn a4(base: u32, m: u32, k: u32) -> vec4<f32> {
  let o = base + min(m, p.M - 1u) * p.sam + k * p.sak;
  return vec4<f32>(a[o], a[o + p.sak], a[o + 2u * p.sak], a[o + 3u * p.sak]);
}

@compute @workgroup_size(WG)
fn strip(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = grid_coords(wg.x + wg.y * nwg.x);
  if (g.z >= p.batch) { return; }
  let n = g.x * WG + lid;
  let m0 = g.y * 8u;
  let ab = g.z * p.a_bs;
  let bo = g.z * p.b_bs + min(n, p.N - 1u) * p.sbn;
  var lo = vec4<f32>(touch_bias());
  var hi = vec4<f32>(0.0);
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    let o = bo + k * p.sbk;
    let bv = vec4<f32>(b[o], b[o + p.sbk], b[o + 2u * p.sbk], b[o + 3u * p.sbk]);
    lo.x += dot(a4(ab, m0, k), bv);
    lo.y += dot(a4(ab, m0 + 1u, k), bv);
    lo.z += dot(a4(ab, m0 + 2u, k), bv);
    lo.w += dot(a4(ab, m0 + 3u, k), bv);
    hi.x += dot(a4(ab, m0 + 4u, k), bv);
    hi.y += dot(a4(ab, m0 + 5u, k), bv);
    hi.z += dot(a4(ab, m0 + 6u, k), bv);
    hi.w += dot(a4(ab, m0 + 7u, k), bv);
  }
  for (; k < p.K; k++) {
    let bv = b[bo + k * p.sbk];
    var av: array<f32, 8>;
    for (var i = 0u; i < 8u; i++) { av[i] = a[ab + min(m0 + i, p.M - 1u) * p.sam + k * p.sak]; }
    lo += vec4<f32>(av[0], av[1], av[2], av[3]) * bv;
    hi += vec4<f32>(av[4], av[5], av[6], av[7]) * bv;
  }
  store_rows(g.z * p.M * p.N, m0, n, lo, hi);
}

// Split-K reduction: c[bt, m, n] = epilogue(Σ_s part[(bt·splits + s)·M·N + m·N + n]). The host binds the
// scratch buffer at both @binding(1) and @binding(2) (read-only).
@compute @workgroup_size(WG)
fn splitk_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_id(wg, nwg, lid);
  let mn = p.M * p.N;
  if (i >= mn * p.batch) { return; }
  let bt = i / mn;
  let r = i % mn;
  var s = touch_bias() + select(0.0, b[0], p.N == 0u);
  let base = bt * p.splits * mn + r;
  for (var j = 0u; j < p.splits; j++) { s += a[base + j * mn]; }
  c[i] = epilogue(s, r % p.N, i);
}

// ---------------------------------------------------------------------------------------- pack_rows
// A k-contiguous copy of one operand for blocked_vab (kernels/matmul_sg.wgsl) on lavapipe:
//   c[(bt·M + r)·N + k] = a[bt·a_bs + r·sam + k·sak] for k < K (M rows of K, written at row stride N ≥ K;
//   K and N multiples of 4).
// Lane l of workgroup (x, y, bt) writes k = 4·(x·WG + l) .. +3 of rows PACK_ROWS·y .. +PACK_ROWS−1 as one vec4:
// the grid gives every coordinate (no index division, which lavapipe issues lane by lane), and a workgroup
// does enough work to cover its own launch cost. The host binds the source at @binding(1) and @binding(2).
const PACK_ROWS: u32 = 8u;
@group(0) @binding(4) var<storage, read_write> c4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn pack_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = 4u * (wg.x * WG + lid);
  if (k >= p.K) { return; }
  let bt = wg.z;
  let live = select(0.0, b[0] + bias[0] + res[0], p.N == 0u); // keeps the bindings in the layout
  for (var i = 0u; i < PACK_ROWS; i++) {
    let r = wg.y * PACK_ROWS + i;
    if (r >= p.M) { return; }
    let o = bt * p.a_bs + r * p.sam + k * p.sak;
    c4[((bt * p.M + r) * p.N + k) / 4u] = vec4<f32>(a[o], a[o + p.sak], a[o + 2u * p.sak], a[o + 3u * p.sak]) + live;
  }
}
