// Row element type for kernels that read rows as scalars (attention with a head dim not divisible by 4);
// rows_vec4.wgsl is the twin.
alias VT = f32;
fn hsum(x: VT) -> f32 { return x; }
