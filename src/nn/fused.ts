// Projections with a fused epilogue: p(x) + residual or act(p(x)) in the projection's own matmul launch when p
// is a plain f32 Linear, else p's forward and a separate op (LoRA-wrapped and non-f32 projections). The blocks
// of the U-Net and the transformers use these for their skips and activations (fewer launches: on lavapipe a
// small model is bound by the cost per launch).
import { Tensor, tidy } from '../tensor/tensor.js';
import { add, unary } from '../tensor/ops/elementwise.js';
import { linear, type MatmulActivation } from '../tensor/ops/matmul.js';
import { Linear, type Projection } from './linear.js';
import { settings } from '../settings.js';

/** The plain f32 Linear behind `p`, or null (also when settings.fuse is off: the unfused baseline). */
const plainF32 = (p: Projection, x: Tensor): Linear | null =>
  (settings.fuse && p instanceof Linear && p.weight.dtype === 'f32' && x.dtype === 'f32' && x.rank >= 2 ? p : null);

/** p(x) + residual (the output's shape). */
export function projectAdd(p: Projection, x: Tensor, residual: Tensor): Tensor {
  const l = plainF32(p, x);
  if (l && residual.dtype === 'f32') return linear(x, l.weight, l.bias ?? undefined, { residual });
  return tidy(() => add(p.forward(x), residual));
}

/** act(p(x)). */
export function projectAct(p: Projection, x: Tensor, act: Exclude<MatmulActivation, 'none'>): Tensor {
  const l = plainF32(p, x);
  if (l) return linear(x, l.weight, l.bias ?? undefined, { activation: act });
  return tidy(() => unary(act, p.forward(x)));
}
