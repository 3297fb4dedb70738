// Row element type for kernels that read rows as vectors (attention with a head dim divisible by 4):
// VT is the element type of the bound arrays, hsum folds one into a scalar. rows_f32.wgsl is the twin.
alias VT = vec4<f32>;
fn hsum(x: VT) -> f32 { return x.x + x.y + x.z + x.w; }
