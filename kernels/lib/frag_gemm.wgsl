// The tiled GEMM on fragments shared by kernels/matmul_f16.wgsl and kernels/conv2d_f16.wgsl: a BM × BN
// output tile per workgroup (BM = WM·TM·FM, BN = WN·TN·FN), k staged BK at a time through `sh`, each
// of the WM × WN warps multiplying its TM × TN fragments, then an epilogue that takes the fragments one
// at a time through the warp's FM × FN slot of `sf`. The family provides (read after this file is
// composed, so the names resolve): the consts BM, BN and WG, and
//   gemm_k_range(wg) -> vec2<u32>           the k slice [x, y) of this workgroup (split-K)
//   gemm_stage(lid, wg, kb, k1)             copies the k block at kb into sh (zeros at k ≥ k1 and outside)
//   gemm_frag_a(row, kk) -> FragA           A's fragment at tile row `row`, block column kk
//   gemm_frag_b(kk, col) -> FragB           B's fragment at block row kk, tile column `col`
//   gemm_emit(wg, row, col, v)              writes one result (bounds-checked by the family)
// Everything fragment-related runs in uniform control flow: k bounds come from wg and params.
fn frag_gemm(wg: vec3<u32>, lid: u32, sgid: u32, sl: u32) {
  let warp = frag_warp(lid, sgid);
  let lane = frag_lane(sl);
  let wm = warp % WM;
  let wn = warp / WM;
  let kr = gemm_k_range(wg);
  var acc: array<FragC, TM * TN>;
  for (var f = 0u; f < TM * TN; f++) { acc[f] = frag_zero(); }
  for (var kb = kr.x; kb < kr.y; kb += BK) {
    gemm_stage(lid, wg, kb, kr.y);
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk += FK) {
      var fa: array<FragA, TM>;
      for (var i = 0u; i < TM; i++) { fa[i] = gemm_frag_a((wm * TM + i) * FM, kk); }
      for (var j = 0u; j < TN; j++) {
        let fb = gemm_frag_b(kk, (wn * TN + j) * FN);
        for (var i = 0u; i < TM; i++) { acc[i * TN + j] = frag_mma(fa[i], fb, acc[i * TN + j]); }
      }
    }
    workgroupBarrier();
  }
  let slot = warp * FM * FN;
  for (var f = 0u; f < TM * TN; f++) {
    frag_store(slot, acc[f], FN);
    workgroupBarrier();
    let mb = wg.y * BM + (wm * TM + f / TN) * FM;
    let nb = wg.x * BN + (wn * TN + f % TN) * FN;
    for (var e = lane; e < FM * FN; e += SG) { gemm_emit(wg, mb + e / FN, nb + e % FN, sf[slot + e]); }
    workgroupBarrier();
  }
}
