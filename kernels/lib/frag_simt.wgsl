// Fragment API in plain WGSL: one invocation holds a whole 4 × 4 × 4 fragment (SG = 1) as mat4x4
// values, column-major as WGSL matrices are: FragA a[k][m] = A(m, k), FragB b[n][k] = B(k, n), FragC
// c[n][m] = C(m, n), so C += A·B is c + f32(a)·f32(b) — the products of f16 values are exact in f32 and
// the sums are f32, as on tensor cores. The twin of frag_sm.wgsl (read its header for the contract:
// same names, layouts and results up to the order of the f32 additions). Runs on any adapter (FT = f16
// needs shader-f16): it is how the f16 kernels run on lavapipe and on GPUs without subgroup matrices,
// and with FT = f32 it is the f32 register-tiled variant (TM × TN fragments per invocation). mat4x4
// keeps lavapipe's compile time low (arrays in structs took LLVM several times longer).

const_assert FM == 4u && FN == 4u && FK == 4u;

alias FragA = mat4x4<FT>;
alias FragB = mat4x4<FT>;
alias FragC = mat4x4<f32>;

fn frag_zero() -> FragC { return FragC(); }

fn frag_a(off: u32, stride: u32) -> FragA {
  var r: FragA;
  for (var k = 0u; k < 4u; k++) {
    r[k] = vec4<FT>(sh[off + k], sh[off + stride + k], sh[off + 2u * stride + k], sh[off + 3u * stride + k]);
  }
  return r;
}

fn frag_a_t(off: u32, stride: u32) -> FragA {
  var r: FragA;
  for (var k = 0u; k < 4u; k++) {
    let o = off + k * stride;
    r[k] = vec4<FT>(sh[o], sh[o + 1u], sh[o + 2u], sh[o + 3u]);
  }
  return r;
}

fn frag_b(off: u32, stride: u32) -> FragB {
  var r: FragB;
  for (var n = 0u; n < 4u; n++) {
    r[n] = vec4<FT>(sh[off + n], sh[off + stride + n], sh[off + 2u * stride + n], sh[off + 3u * stride + n]);
  }
  return r;
}

fn frag_b_t(off: u32, stride: u32) -> FragB {
  var r: FragB;
  for (var n = 0u; n < 4u; n++) {
    let o = off + n * stride;
    r[n] = vec4<FT>(sh[o], sh[o + 1u], sh[o + 2u], sh[o + 3u]);
  }
  return r;
}

fn frag_mma(a: FragA, b: FragB, c: FragC) -> FragC { return c + mat4x4<f32>(a) * mat4x4<f32>(b); }

fn frag_store(off: u32, c: FragC, stride: u32) {
  for (var m = 0u; m < 4u; m++) {
    sf[off + m * stride] = c[0][m];
    sf[off + m * stride + 1u] = c[1][m];
    sf[off + m * stride + 2u] = c[2][m];
    sf[off + m * stride + 3u] = c[3][m];
  }
}

fn frag_warp(lid: u32, sgid: u32) -> u32 { return lid; }
fn frag_lane(sl: u32) -> u32 { return 0u; }
