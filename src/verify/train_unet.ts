// verify-reference section `train`, case `unet_full`: full U-Net backpropagation (fine-tuning or pre-training).
// loss = sum(noise_pred · R) for the unet/ run-1 inputs, so R arrives at noise_pred; the gradient of every
// U-Net parameter, of the sample and of the context against PyTorch autograd's.
import { backward, requireGrad } from '../autograd/tape.js';
import { Tensor } from '../tensor/tensor.js';
import { mul } from '../tensor/ops/elementwise.js';
import { sumAll } from '../tensor/ops/reduce.js';
import { UNet2DConditionModel } from '../nn/unet.js';
import { sectionDir } from './models.js';
import type { TrainCaseRunner } from './train.js';

export const trainUnetCase: TrainCaseRunner = {
  case: 'unet_full',
  describe: 'sum(noise_pred · R) backpropagated to every U-Net parameter, the sample and the context',
  async run(ctx) {
    // A model of its own: every parameter trainable, gradients left on it.
    const unet = await UNet2DConditionModel.fromPretrained(sectionDir(ctx, 'unet'));
    const own: Tensor[] = [];
    try {
      unet.unfreeze();
      const sample = requireGrad(await ctx.gpuTensor('unet_full.sample'));
      const ehs = requireGrad(await ctx.gpuTensor('unet_full.encoder_hidden_states'));
      const R = await ctx.gpuTensor('unet_full.R');
      own.push(sample, ehs, R);
      const ts = Array.from((await ctx.tensor('unet_full.timestep')).data);
      const y = unet.forward(sample, ts, ehs).sample;
      const loss = sumAll(mul(y, R));
      own.push(y, loss);
      await ctx.produce('unet_full.noise_pred', await y.toArray(), y.shape);
      backward(loss);
      await ctx.produce('unet_full.loss', await loss.toArray(), loss.shape);
      await ctx.produce('unet_full.grad.sample', await sample.grad!.toArray(), sample.shape);
      await ctx.produce('unet_full.grad.encoder_hidden_states', await ehs.grad!.toArray(), ehs.shape);
      const expected = new Set(ctx.outputs().map(([n]) => n).filter((n) => n.startsWith('grad.unet.')));
      for (const [key, p] of unet.namedParameters()) {
        const name = `grad.unet.${key}`;
        if (!expected.delete(name)) {
          ctx.row({ name, metric: '-', value: null, tol: null, status: 'FAIL', note: 'our U-Net has this parameter, the reference lists no gradient for it' });
          continue;
        }
        if (!p.grad) {
          ctx.row({ name, metric: '-', value: null, tol: null, status: 'FAIL', note: 'no gradient reached it' });
          continue;
        }
        await ctx.produce(name, await p.grad.toArray(), p.shape);
      }
      for (const t of [sample, ehs]) { t.grad?.dispose(); t.grad = null; }
    } finally {
      for (const t of own) t.dispose();
      unet.dispose();
    }
  },
};
