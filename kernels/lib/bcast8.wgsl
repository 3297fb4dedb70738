enable subgroups;

// Register-blocked accumulation over a subgroup of ≥ 8 lanes (lavapipe's *_sg and blocked kernels): lane i
// holds 4 consecutive k of row r0 + i in `av`; every lane takes each row with subgroupBroadcast (one
// lane-varying load per row instead of 8 uniform ones, which lavapipe scalarises) and multiplies it into its two
// column vectors. acc[0], acc[1] are rows r0..r0+3 and r0+4..r0+7 of the first column, acc[2], acc[3] of the
// second; a caller with one column passes zeros as the second and never reads acc[2..3] (the compiler drops them).
fn bcast8_acc2(av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, acc: ptr<function, array<vec4<f32>, 4>>) {
  let w0 = subgroupBroadcast(av, 0u);
  let w1 = subgroupBroadcast(av, 1u);
  let w2 = subgroupBroadcast(av, 2u);
  let w3 = subgroupBroadcast(av, 3u);
  let w4 = subgroupBroadcast(av, 4u);
  let w5 = subgroupBroadcast(av, 5u);
  let w6 = subgroupBroadcast(av, 6u);
  let w7 = subgroupBroadcast(av, 7u);
  (*acc)[0] += vec4<f32>(dot(w0, b0), dot(w1, b0), dot(w2, b0), dot(w3, b0));
  (*acc)[1] += vec4<f32>(dot(w4, b0), dot(w5, b0), dot(w6, b0), dot(w7, b0));
  (*acc)[2] += vec4<f32>(dot(w0, b1), dot(w1, b1), dot(w2, b1), dot(w3, b1));
  (*acc)[3] += vec4<f32>(dot(w4, b1), dot(w5, b1), dot(w6, b1), dot(w7, b1));
}
