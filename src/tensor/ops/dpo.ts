// Step-DPO loss with clamped likelihood ratios (SPO/LPO, LPO-SPEC §5.2). See kernels/dpo_loss.wgsl.
import { ShapeError, ArgumentError, DTypeError } from '../../errors.js';
import { defineParams } from '../../gpu/params.js';
import { gpu } from '../../gpu/runtime.js';
import { kernelModule } from '../../gpu/wgsl.js';
import { record } from '../../autograd/tape.js';
import { Tensor } from '../tensor.js';
import { readOptions } from './options.js';

const code = kernelModule('dpo_loss');
const PARAMS = defineParams('dpo_loss.wgsl', 'Params', { P: 'u32', beta: 'f32', lo: 'f32', hi: 'f32', log_lo: 'f32', log_hi: 'f32', slot: 'u32' });

const WG = 64;

/** stepDpoLoss's options. Both are required: the op keeps no LPO defaults (src/lpo/loss.ts has them). */
export interface StepDpoLossOptions {
  /** β, the inverse temperature of the preference logit (LPO: 500). */
  beta: number;
  /** The ratio clamp, in (0, 1) (LPO: 0.1). */
  eps: number;
}
const DPO_SPEC = { beta: { kind: 'number', required: true }, eps: { kind: 'number', required: true } } as const;

/**
 * −mean_p log σ(β·log r_w − β·log r_l), r = clamp(exp(logp_policy − logp_ref), 1 − eps, 1 + eps),
 * over P pairs given as four [P] tensors. Returns a scalar; its gradient reaches all four inputs
 * (exactly zero where a ratio is clamped). LPO uses β = 500, eps = 0.1.
 */
export function stepDpoLoss(logpPolicyW: Tensor, logpRefW: Tensor, logpPolicyL: Tensor, logpRefL: Tensor, opts: StepDpoLossOptions): Tensor {
  const { beta, eps } = readOptions('stepDpoLoss', opts, DPO_SPEC);
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
  const params = (slot: number) => PARAMS.of({ P, beta, lo: 1 - eps, hi: 1 + eps, log_lo: Math.log(1 - eps), log_hi: Math.log(1 + eps), slot });
  gpu().dispatch({
    kernel: { name: 'dpo_loss', code, entry: 'dpo_loss', constants: { WG } },
    buffers: [...ins.map((t) => t.buffer), loss.buffer, grad.buffer],
    params: params(0),
    workgroups: Math.ceil(P / WG),
  });
  const out = record('stepDpoLoss', ins, loss, [grad], (dy, [g]) =>
    [0, 1, 2, 3].map((slot) => () => {
      const dx = Tensor.empty([P]);
      gpu().dispatch({
        kernel: { name: 'dpo_loss.scale', code, entry: 'dpo_scale', constants: { WG } },
        buffers: [g.buffer, dy.buffer, dx.buffer],
        params: params(slot),
        workgroups: Math.ceil(P / WG),
      });
      return dx;
    }),
  );
  grad.dispose();
  return out;
}
