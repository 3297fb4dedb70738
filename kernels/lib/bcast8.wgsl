enable subgroups;

// Register-blocked accumulation over a subgroup of ≥ 8 lanes (lavapipe's *_sg and blocked kernels): lane i
// holds 4 consecutive k of row r0 + i in `av`; every lane takes each row with subgroupBroadcast (one
// lane-varying load per row instead of 8 uniform ones, which lavapipe scalarises) and multiplies it into its two
// column vectors. acc[0], acc[1] are rows r0..r0+3 and r0+4..r0+7 of the first column, acc[2], acc[3] of the
// second; a caller with one column passes zeros as the second and never reads acc[2..3] (the compiler drops them).
fn bcast8_acc2(av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, acc: ptr<function, array<vec4<f32>, 4>>) {
  // One k at a time, fused multiply-adds into the accumulators: 2–5% faster on lavapipe than adding a dot
  // of the 4 k per row (same-process A/B of blocked_vab).
  for (var j = 0u; j < 4u; j++) {
    let x = av[j];
    let lo = vec4<f32>(subgroupBroadcast(x, 0u), subgroupBroadcast(x, 1u), subgroupBroadcast(x, 2u), subgroupBroadcast(x, 3u));
    let hi = vec4<f32>(subgroupBroadcast(x, 4u), subgroupBroadcast(x, 5u), subgroupBroadcast(x, 6u), subgroupBroadcast(x, 7u));
    (*acc)[0] = fma(lo, vec4<f32>(b0[j]), (*acc)[0]);
    (*acc)[1] = fma(hi, vec4<f32>(b0[j]), (*acc)[1]);
    (*acc)[2] = fma(lo, vec4<f32>(b1[j]), (*acc)[2]);
    (*acc)[3] = fma(hi, vec4<f32>(b1[j]), (*acc)[3]);
  }
}
