// Step-DPO loss with clamped likelihood ratios (SPO/LPO, LPO-SPEC §5.2). See kernels/dpo_loss.wgsl.
import family from '../../../kernels/dpo_loss.wgsl';
import { withCommon } from '../../gpu/wgsl.js';
import { ShapeError, ArgumentError, DTypeError } from '../../errors.js';
import { gpu, f32 } from '../../gpu/runtime.js';
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';

const source = withCommon(family);

const WG = 64;

/**
 * −mean_p log σ(β·log r_w − β·log r_l), r = clamp(exp(logp_policy − logp_ref), 1 − eps, 1 + eps),
 * over P pairs given as four [P] tensors. Returns a scalar; its gradient reaches all four inputs
 * (exactly zero where a ratio is clamped). LPO uses β = 500, eps = 0.1.
 */
export function stepDpoLoss(logpPolicyW: Tensor, logpRefW: Tensor, logpPolicyL: Tensor, logpRefL: Tensor, beta: number, eps: number): Tensor {
  const ins = [logpPolicyW, logpRefW, logpPolicyL, logpRefL];
  const P = logpPolicyW.size;
  for (const t of ins) {
    if (t.dtype !== 'f32') throw new DTypeError(`stepDpoLoss: log-probabilities must be f32, got ${t.dtype}`);
    if (t.rank !== 1 || t.size !== P) {
      throw new ShapeError(`stepDpoLoss: inputs must all be [P]; got [${ins.map((x) => `[${x.shape}]`).join(', ')}]`);
    }
  }
  if (P === 0) throw new ShapeError('stepDpoLoss: no pairs');
  if (!(eps > 0 && eps < 1)) throw new ArgumentError(`stepDpoLoss: eps ${eps} must lie in (0, 1)`);
  const loss = Tensor.empty([]);
  const grad = Tensor.empty([4, P]);
  const params = [P, f32(beta), f32(1 - eps), f32(1 + eps), f32(Math.log(1 - eps)), f32(Math.log(1 + eps)), 0, 0];
  gpu().dispatch({
    kernel: { name: 'dpo_loss', code: source, entry: 'dpo_loss', constants: { WG } },
    buffers: [...ins.map((t) => t.buffer), loss.buffer, grad.buffer],
    params,
    workgroups: Math.ceil(P / WG),
  });
  const out = record('stepDpoLoss', ins, loss, [grad], (dy, [g]) =>
    [0, 1, 2, 3].map((slot) => () => {
      const dx = Tensor.empty([P]);
      gpu().dispatch({
        kernel: { name: 'dpo_loss.scale', code: source, entry: 'dpo_scale', constants: { WG } },
        buffers: [g.buffer, dy.buffer, dx.buffer],
        params: [P, f32(beta), 0, 0, 0, 0, slot, 0],
        workgroups: Math.ceil(P / WG),
      });
      return dx;
    }),
  );
  grad.dispose();
  return out;
}
