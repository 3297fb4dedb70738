// verify-reference section `pipeline`: StableDiffusionPipeline (CFG + DDIM + VAE decode) assembled from the
// folder's tokenizer, text_encoder, unet, vae and ddim sections, from the given initial latents.
import { DDIMScheduler } from '../diffusion/ddim.js';
import { StableDiffusionPipeline } from '../diffusion/pipeline.js';
import { Tensor } from '../tensor/tensor.js';
import type { SectionRunner } from './types.js';
import { textEncoderOf, tokenizerOf, unetOf, vaeOf } from './models.js';

interface PipelineJson {
  prompt: string[] | string;
  negative_prompt?: string[] | string | null;
  num_inference_steps: number;
  guidance_scale: number;
  eta?: number;
  timesteps?: number[];
  scaling_factor?: number;
}

export const pipelineRunner: SectionRunner = {
  section: 'pipeline',
  describe: 'StableDiffusionPipeline (CFG, DDIM, VAE decode) from the given latents',
  async run(ctx) {
    const pj = ctx.json<PipelineJson>('pipeline.json');
    const ddimFiles = Object.keys(ctx.manifest.sections.ddim?.files ?? {});
    const schedRel = ddimFiles.find((f) => /scheduler_config\.json$/.test(f));
    if (!schedRel) throw new Error("the ddim section lists no scheduler_config.json (the pipeline's scheduler)");
    const pipe = new StableDiffusionPipeline({
      tokenizer: tokenizerOf(ctx),
      textEncoder: await textEncoderOf(ctx),
      unet: await unetOf(ctx),
      vae: await vaeOf(ctx),
      scheduler: DDIMScheduler.fromFile(ctx.file(schedRel)),
    });
    if (pj.scaling_factor !== undefined && pj.scaling_factor !== pipe.vae.config.scalingFactor) {
      ctx.row({ name: 'scaling_factor', metric: '-', value: null, tol: null, status: 'FAIL', note: `pipeline.json ${pj.scaling_factor}, VAE config ${pipe.vae.config.scalingFactor}` });
    }
    const lat = await ctx.tensor('latents');
    const stepLatents: { name: string; values: Float32Array; shape: readonly number[] }[] = [];
    const res = await pipe.generate({
      prompt: pj.prompt,
      negativePrompt: pj.negative_prompt ?? undefined,
      numInferenceSteps: pj.num_inference_steps,
      guidanceScale: pj.guidance_scale,
      eta: pj.eta ?? 0,
      latents: Tensor.fromArray(lat.data, lat.shape),
      onStep: async (s) => { stepLatents.push({ name: `step.${s.step}.latents`, values: await s.latents.toArray(), shape: s.latents.shape }); },
    });
    if (pj.timesteps) ctx.compare('timesteps', res.timesteps, pj.timesteps, { dtype: 'int64' });
    const got = new Map<string, Tensor | { values: Float32Array; shape: readonly number[] }>();
    got.set('prompt_embeds', res.promptEmbeds).set('final_latents', res.latents);
    if (res.negativePromptEmbeds) got.set('negative_prompt_embeds', res.negativePromptEmbeds);
    if (res.images) got.set('image', res.images);
    for (const s of stepLatents) got.set(s.name, s);
    for (const [name] of ctx.outputs()) {
      const t = got.get(name);
      if (!t) continue;
      if (t instanceof Tensor) await ctx.produce(name, await t.toArray(), t.shape);
      else await ctx.produce(name, t.values, t.shape);
    }
    for (const t of got.values()) if (t instanceof Tensor) t.dispose();
  },
};
