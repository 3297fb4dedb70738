enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;

// Fragment API on tensor cores: one fragment is a subgroup matrix, owned by a whole subgroup (SG lanes,
// 32 on NVIDIA). f16 operands, f32 accumulation. The twin is frag_simt.wgsl (one invocation holds a
// whole fragment, any adapter with shader-f16): the kernel families that compose either one
// (matmul_f16, conv2d_f16, attention_f16) are the same text, so the code that runs on tensor cores is
// the code CI runs on lavapipe, except for this file.
//
// The including family declares the staging arrays `sh: array<FT, …>` (operands, FT = f16 here) and
// `sf: array<f32, …>` (results) in workgroup memory, and the host generates the consts FM, FN, FK
// (one of the adapter's f16→f32 subgroupMatrixConfigs) and SG (the subgroup size; subgroupMinSize ==
// subgroupMaxSize is required, so that a workgroup of WARPS·SG invocations is WARPS subgroups).
// Every call must be in subgroup-uniform control flow with subgroup-uniform offsets and strides (the
// families keep loop bounds and offsets functions of workgroup ids, subgroup ids and constants).
//
// Layouts (element (row, col) of a matrix with `rows` × `cols`):
//   row_major  sh[off + row·stride + col]          col_major  sh[off + col·stride + row]
// FragA is FM × FK (left), FragB is FK × FN (right), FragC is FM × FN (result).

alias FragA = subgroup_matrix_left<f16, FK, FM>;
alias FragB = subgroup_matrix_right<f16, FN, FK>;
alias FragC = subgroup_matrix_result<f32, FN, FM>;

fn frag_zero() -> FragC { return FragC(); }

// A (m, k) at sh[off + m·stride + k].
fn frag_a(off: u32, stride: u32) -> FragA { return subgroupMatrixLoad<FragA, row_major>(&sh, off, stride); }
// A (m, k) at sh[off + k·stride + m] (A staged k-major).
fn frag_a_t(off: u32, stride: u32) -> FragA { return subgroupMatrixLoad<FragA, col_major>(&sh, off, stride); }
// B (k, n) at sh[off + k·stride + n].
fn frag_b(off: u32, stride: u32) -> FragB { return subgroupMatrixLoad<FragB, row_major>(&sh, off, stride); }
// B (k, n) at sh[off + n·stride + k] (B staged n-major).
fn frag_b_t(off: u32, stride: u32) -> FragB { return subgroupMatrixLoad<FragB, col_major>(&sh, off, stride); }

fn frag_mma(a: FragA, b: FragB, c: FragC) -> FragC { return subgroupMatrixMultiplyAccumulate(a, b, c); }

// C (m, n) to sf[off + m·stride + n].
fn frag_store(off: u32, c: FragC, stride: u32) { subgroupMatrixStore<row_major>(&sf, off, c, stride); }

// The fragment owner ("warp") of an invocation and its lane in it.
fn frag_warp(lid: u32, sgid: u32) -> u32 { return sgid; }
fn frag_lane(sl: u32) -> u32 { return sl; }
