// verify-reference section `ddim`: diffusers' DDIMScheduler (schedule, timesteps, step cases, add_noise).
import { DDIMScheduler } from '../diffusion/ddim.js';
import { Tensor } from '../tensor/tensor.js';
import type { SectionRunner } from './types.js';

interface StepCase { case: number; num_inference_steps: number; timestep: number; eta: number }

export const ddimRunner: SectionRunner = {
  section: 'ddim',
  describe: 'DDIMScheduler from scheduler_config.json: betas, alphas_cumprod, set_timesteps, step, add_noise',
  async run(ctx) {
    const config = ctx.json<Record<string, unknown>>('scheduler_config.json');
    const cases = ctx.json<{ step_cases?: StepCase[] }>('cases.json');
    const byCase = new Map((cases.step_cases ?? []).map((c) => [c.case, c]));
    const stepInputs = new Map<string, Tensor>();
    const stepInput = async (name: string) => {
      let t = stepInputs.get(name);
      if (!t) stepInputs.set(name, (t = await ctx.gpuTensor(name)));
      return t;
    };
    for (const [name] of ctx.outputs()) {
      const s = DDIMScheduler.fromConfig(config);
      let m: RegExpMatchArray | null;
      if (name === 'alphas_cumprod') await ctx.produce(name, s.alphasCumprod);
      else if (name === 'betas') await ctx.produce(name, s.betas);
      else if ((m = name.match(/^timesteps\.(\d+)$/))) await ctx.produce(name, s.setTimesteps(Number(m[1])));
      else if ((m = name.match(/^step\.(\d+)\.(prev_sample|pred_original_sample)$/))) {
        const c = byCase.get(Number(m[1]));
        if (!c) {
          ctx.row({ name, metric: '-', value: null, tol: null, status: 'FAIL', note: `cases.json has no step case ${m[1]}` });
          continue;
        }
        s.setTimesteps(c.num_inference_steps);
        const out = s.step(await stepInput('step.model_output'), c.timestep, await stepInput('step.sample'), {
          eta: c.eta,
          varianceNoise: c.eta > 0 ? await stepInput('step.variance_noise') : undefined,
        });
        const t = m[2] === 'prev_sample' ? out.prevSample : out.predOriginalSample;
        await ctx.produce(name, await t.toArray(), t.shape);
        out.prevSample.dispose();
        out.predOriginalSample.dispose();
      } else if (name === 'add_noise.noisy_samples') {
        const ts = await ctx.tensor('add_noise.timesteps');
        const x0 = await ctx.gpuTensor('add_noise.original_samples');
        const noise = await ctx.gpuTensor('add_noise.noise');
        const y = s.addNoise(x0, noise, Array.from(ts.data));
        await ctx.produce(name, await y.toArray(), y.shape);
        for (const t of [x0, noise, y]) t.dispose();
      }
    }
    for (const t of stepInputs.values()) t.dispose();
  },
};
