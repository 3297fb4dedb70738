// verify-reference section `lrm`: the Latent Reward Model (LPO-SPEC §1.2) on the folder's U-Net and text encoder,
// its pair loss (§2.3, a tie and 1/n weights) and the loss's gradients w.r.t. τ and both projections, for the
// configured VFE weight and for w = 1. Everything (indices, widths, prompts, w) is read from the files.
import { readFileSync } from 'node:fs';
import { backward } from '../autograd/tape.js';
import { CLIPTextModel } from '../nn/clip.js';
import type { HostTensor } from '../io/safetensors.js';
import { openWeights } from '../io/weights.js';
import type { Tensor } from '../tensor/tensor.js';
import { stageEndIndices } from '../nn/unet.js';
import { loadHeads } from '../lrm/io.js';
import { pairLoss, pairWeights } from '../lrm/loss.js';
import { LatentRewardModel, type ScoreDetails } from '../lrm/model.js';
import { loadTruncatedUNet } from '../lrm/truncated.js';
import { ReferenceDataError } from './manifest.js';
import { sectionDir, tokenizerOf } from './models.js';
import type { SectionContext, SectionRunner } from './types.js';

interface GoldenLrmConfig {
  guidance_scale: number;
  stage_end_indices: number[];
  null_prompt?: string;
  pairs: { prompt: string }[];
}

/** The golden LRM: lrm/config.json, the unet/ and text_encoder/ weights, lrm/projections.safetensors. */
export async function goldenLrm(ctx: SectionContext): Promise<{ model: LatentRewardModel; cfg: GoldenLrmConfig }> {
  const cfgPath = ctx.file('lrm/config.json');
  let cfg: GoldenLrmConfig;
  try {
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as GoldenLrmConfig;
  } catch (e) {
    throw new ReferenceDataError(`${cfgPath} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof cfg.guidance_scale !== 'number' || !Array.isArray(cfg.pairs)) throw new ReferenceDataError(`${cfgPath}: needs guidance_scale and pairs`);
  const heads = ctx.file('lrm/projections.safetensors');
  const r = await openWeights(heads);
  const projectionDim = r.info('text_projection.weight').shape[0];
  await r.close();
  const unet = await loadTruncatedUNet(sectionDir(ctx, 'unet'));
  const textEncoder = await CLIPTextModel.fromPretrained(sectionDir(ctx, 'text_encoder')).catch((e) => { unet.dispose(); throw e; });
  const model = new LatentRewardModel({
    unet, textEncoder, tokenizer: tokenizerOf(ctx),
    config: { vfeWeight: cfg.guidance_scale, nullPrompt: cfg.null_prompt ?? '', projectionDim },
  });
  try {
    await loadHeads(model, heads);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, cfg };
}

/** The golden batch: 2P latents [image_0s; image_1s], per-image timesteps, each image's pair prompt, labels, weights. */
export async function goldenBatch(get: (name: string) => Promise<HostTensor>, cfg: GoldenLrmConfig) {
  const P = cfg.pairs.length;
  const label0 = Array.from((await get('label_0')).data);
  const label1 = Array.from((await get('label_1')).data);
  const n = Array.from((await get('num_examples_per_prompt')).data);
  const timesteps = Array.from((await get('timesteps')).data);
  if (label0.length !== P || timesteps.length !== 2 * P) throw new ReferenceDataError(`lrm: ${P} pairs in config.json but ${label0.length} labels and ${timesteps.length} timesteps`);
  const prompts = [...cfg.pairs, ...cfg.pairs].map((p) => p.prompt);
  return { P, prompts, timesteps, labels: { label0, label1, weights: pairWeights(n) } };
}

/** Rows `rows` of a [R, ...] host array. */
export function hostRows(data: Float32Array, width: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * width);
  for (let i = 0; i < rows.length; i++) out.set(data.subarray(rows[i] * width, (rows[i] + 1) * width), i * width);
  return out;
}

async function runOne(ctx: SectionContext, model: LatentRewardModel, cfg: GoldenLrmConfig, prefix: string): Promise<void> {
  const listed = new Set(ctx.outputs().map(([n]) => n));
  const put = async (name: string, t: Tensor | Float32Array | number[] | null | undefined, shape?: readonly number[]) => {
    if (!t || !listed.has(prefix + name)) return;
    if (t instanceof Float32Array || Array.isArray(t)) await ctx.produce(prefix + name, t, shape);
    else await ctx.produce(prefix + name, await t.toArray(), t.shape);
  };
  const b = await goldenBatch((n) => ctx.tensor(n), cfg);
  const latents = await ctx.gpuTensor('noisy_latents');
  const text = model.encodeText(b.prompts);
  const P = b.P;
  let d: ScoreDetails | null = null;
  try {
    d = model.scoreDetails(latents, b.timesteps, text);
    const pairRows = Array.from(text.index.subarray(0, P));
    await put('text.pooler_output', hostRows(await text.pooled.toArray(), text.pooled.shape[1], pairRows), [P, text.pooled.shape[1]]);
    if (text.nullRow >= 0) {
      const [, L, D] = text.context.shape;
      await put('text.null_encoder_hidden_states', hostRows(await text.context.toArray(), L * D, [text.nullRow]), [1, L, D]);
    }
    const firstP = async (t: Tensor) => (await t.toArray()).subarray(0, P * t.shape[1]);
    await put('text.T', await firstP(d.T), [P, d.T.shape[1]]);
    await put('text.T_normalized', await firstP(d.tNormalized), [P, d.T.shape[1]]);
    for (const [k, i] of model.config.featureIndices.entries()) await put(`image.pooled.down_block_res_samples.${i}`, d.pooled[k]);
    await put('image.pooled.mid_block.text', d.midText);
    await put('image.pooled.mid_block.null', d.midNull);
    await put('image.mid_vfe', d.midVfe);
    await put('image.concat', d.concat);
    await put('image.V', d.V);
    await put('image.V_normalized', d.vNormalized);
    await put('scores', d.scores);
    const loss = pairLoss(d.scores, b.labels);
    await put('loss.logits', loss.logits);
    await put('loss.probs', loss.probs);
    await put('loss.per_pair', loss.perPair);
    await put('loss.weights', b.labels.weights, [P]);
    await put('loss.value', loss.loss);
    backward(loss.loss);
    await put('grad.logit_scale', model.logitScale.grad);
    await put('grad.text_projection.weight', model.textProjection.weight.grad);
    await put('grad.visual_projection.weight', model.visualProjection.weight.grad);
    for (const t of [loss.logits, loss.probs, loss.perPair, loss.loss]) t.dispose();
  } finally {
    model.zeroGrad();
    if (d) for (const t of new Set(Object.values(d).flat())) (t as Tensor | null)?.dispose();
    text.dispose();
    latents.dispose();
  }
}

export const lrmRunner: SectionRunner = {
  section: 'lrm',
  describe: 'LatentRewardModel (truncated U-Net, VFE, projections) and the pair loss with gradients w.r.t. tau and the projections, w from config.json and w = 1',
  async run(ctx) {
    const { model, cfg } = await goldenLrm(ctx);
    try {
      // The feature indices come from the U-Net's layout (stageEndIndices), not from the reference's list.
      ctx.compare('config.stage_end_indices', stageEndIndices(model.unet.config.layersPerBlock), cfg.stage_end_indices, { metric: 'exact', tol: 0, rule: 'exact' });
      const ids = await ctx.tensor('input_ids');
      ctx.compare('tokenizer(pairs.prompt) = input_ids', model.tokenizer.encodeBatch(cfg.pairs.map((p) => p.prompt)).flat(), ids.data, { metric: 'exact', tol: 0, rule: 'exact' });
      const nullIds = await ctx.tensor('null_input_ids');
      ctx.compare('tokenizer(null_prompt) = null_input_ids', model.tokenizer.encode(model.config.nullPrompt), nullIds.data, { metric: 'exact', tol: 0, rule: 'exact' });
      // The U-Net and the text encoder are held fixed here (the train section's lrm case trains them too).
      model.unet.freeze();
      model.textEncoder.freeze();
      const w = model.config.vfeWeight;
      await runOne(ctx, model, cfg, '');
      if (ctx.outputs().some(([n]) => n.startsWith('w1.'))) {
        model.config.vfeWeight = 1;
        try {
          await runOne(ctx, model, cfg, 'w1.');
        } finally {
          model.config.vfeWeight = w;
        }
      }
    } finally {
      model.dispose();
    }
  },
};
