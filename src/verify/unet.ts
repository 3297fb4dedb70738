// verify-reference section `unet`: diffusers' UNet2DConditionModel, every run's noise prediction, block outputs,
// debug taps and the down_block_res_samples skip tuple.
import type { Tensor } from '../tensor/tensor.js';
import type { SectionRunner } from './types.js';
import { unetOf } from './models.js';

export const unetRunner: SectionRunner = {
  section: 'unet',
  describe: 'UNet2DConditionModel from config.json + weights.safetensors (strict keys), runs with all features',
  async run(ctx) {
    const model = await unetOf(ctx);
    const runs = [...new Set(Object.keys(ctx.spec.tensors ?? {}).map((n) => n.split('.')[0]).filter((r) => /^run\d+$/.test(r)))];
    const outputs = ctx.outputs();
    for (const run of runs) {
      const sample = await ctx.gpuTensor(`${run}.sample`);
      const ts = await ctx.tensor(`${run}.timestep`);
      const ehs = await ctx.gpuTensor(`${run}.encoder_hidden_states`);
      const o = model.forward(sample, Array.from(ts.data), ehs, { returnFeatures: true });
      const pick = (rest: string): Tensor | undefined => {
        let m: RegExpMatchArray | null;
        if (rest === 'noise_pred') return o.sample;
        if (rest === 'mid_block') return o.mid;
        if ((m = rest.match(/^debug\.(conv_in|time_proj|time_embedding)$/))) return o.debug?.[m[1] as 'conv_in'];
        if ((m = rest.match(/^down_blocks\.(\d+)$/))) return o.downBlocks?.[Number(m[1])];
        if ((m = rest.match(/^up_blocks\.(\d+)$/))) return o.upBlocks?.[Number(m[1])];
        if ((m = rest.match(/^down_block_res_samples\.(\d+)$/))) return o.downBlockResSamples?.[Number(m[1])];
        return undefined;
      };
      for (const [name] of outputs) {
        if (!name.startsWith(`${run}.`)) continue;
        const t = pick(name.slice(run.length + 1));
        if (t) await ctx.produce(name, await t.toArray(), t.shape);
      }
      const all = [o.sample, o.mid, ...(o.downBlocks ?? []), ...(o.upBlocks ?? []), ...(o.downBlockResSamples ?? []), ...Object.values(o.debug ?? {})];
      for (const t of new Set(all)) t?.dispose();
      sample.dispose();
      ehs.dispose();
    }
  },
};
