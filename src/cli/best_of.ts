// `lpo generate --best-of K --lrm <dir>`: LRM-guided step-level best-of-N sampling (inference-time alignment, no
// training): the image is decoded once, after the last step.
import { UsageError } from '../errors.js';
import { writePng } from '../io/image.js';
import type { StableDiffusionPipeline } from '../diffusion/pipeline.js';
import type { UNet2DConditionModel } from '../nn/unet.js';
import { generateBestOfN } from '../lpo/best_of_n.js';
import { loadLrmFor } from './lpo_models.js';

export interface BestOfArgs {
  model: string; prompt: string; steps: number; guidance: number; seed: number; eta: number; out: string;
  bestOf?: number; lrm?: string; height?: number; width?: number;
}

export async function generateBestOf(pipe: StableDiffusionPipeline, a: BestOfArgs, err: { write(s: string): unknown }): Promise<void> {
  if (a.bestOf === undefined || a.lrm === undefined) throw new UsageError('--best-of K and --lrm <folder> go together');
  const f = pipe.vaeScaleFactor;
  if ((a.height ?? 0) % f || (a.width ?? 0) % f) throw new UsageError(`--height and --width must be multiples of ${f}`);
  // Candidates are drawn from the step's noise: η = 0 has none, so best-of-N uses η = 1 unless told otherwise.
  const eta = a.eta > 0 ? a.eta : 1;
  if (a.eta <= 0) err.write('best-of-N: DDIM η = 1 (the candidates need η > 0)\n');
  const { lrm, note } = await loadLrmFor(a.model, a.lrm);
  err.write(`${note}\n`);
  try {
    const t0 = Date.now();
    const s = pipe.sampleSize;
    const r = await generateBestOfN(
      { unet: pipe.unet as UNet2DConditionModel, scheduler: pipe.scheduler, reward: lrm, encodePrompt: (p) => pipe.encodePrompt(p) },
      {
        prompts: [a.prompt], K: a.bestOf, seed: a.seed, numInferenceSteps: a.steps, guidanceScale: a.guidance, eta,
        latentSize: [a.height ? a.height / f : s, a.width ? a.width / f : s],
      },
    );
    err.write(`best-of-${a.bestOf}: LRM score of the final latent ${r.finalScores[0].toFixed(3)}; valid-pair steps ${r.steps.filter((x) => x.valid).length}/${r.steps.length}\n`);
    const img = pipe.decodeLatents(r.latents);
    r.latents.dispose();
    const [, c, h, w] = img.shape;
    writePng(a.out, await img.toArray(), [c, h, w]);
    img.dispose();
    err.write(`wrote ${a.out} (${w}x${h}) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  } finally {
    lrm.dispose();
  }
}
