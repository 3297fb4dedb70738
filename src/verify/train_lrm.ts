// verify-reference section `train`, case `lrm`: the lrm section's model and pair loss with EVERY parameter the LRM
// uses trainable (the authors' LRM trainer trains the U-Net and the text encoder too): the gradient of the loss
// w.r.t. each truncated-U-Net parameter, each text-encoder parameter (token_embedding as its occurring rows) and
// the heads. The up path is not built, so the reference's parameters without a path to the loss must be absent.
import { backward } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { pairLoss } from '../lrm/loss.js';
import type { ScoreDetails } from '../lrm/model.js';
import { goldenBatch, goldenLrm, hostRows } from './lrm.js';
import type { TrainCaseRunner } from './train.js';
import type { SectionContext } from './types.js';

const TOKEN_EMBEDDING = 'text_model.embeddings.token_embedding.weight';
const EXACT = { metric: 'exact' as const, tol: 0, rule: 'exact' };

/** The token_embedding gradient in the reference's sparse format: sorted occurring ids and their rows; the rest must be 0. */
async function tokenEmbeddingGrad(ctx: SectionContext, grad: Tensor, ids: number[]): Promise<void> {
  const name = `grad.lrm.text_encoder.${TOKEN_EMBEDDING}`;
  const [V, D] = grad.shape;
  const dense = await grad.toArray();
  const rows = [...new Set(ids)].sort((a, b) => a - b);
  await ctx.produce(`${name}.rows`, rows, [rows.length]);
  await ctx.produce(`${name}.values`, hostRows(dense, D, rows), [rows.length, D]);
  const listed = new Set(rows);
  const off: number[] = [];
  for (let r = 0; r < V; r++) if (!listed.has(r)) for (let j = 0; j < D; j++) off.push(dense[r * D + j]);
  ctx.compare(`${name} (rows of ids that do not occur are 0)`, off, new Float32Array(off.length), EXACT);
}

export const trainLrmCase: TrainCaseRunner = {
  case: 'lrm',
  describe: 'LRM pair loss (w from lrm/config.json) backpropagated through the truncated U-Net, the text encoder and the heads',
  async run(ctx) {
    const { model, cfg } = await goldenLrm(ctx);
    const caseCfg = ctx.json<{ lrm?: { parameters_without_path_to_loss?: string[] } }>('config.json').lrm ?? {};
    let d: ScoreDetails | null = null;
    const b = await goldenBatch((n) => ctx.tensor(`lrm.${n}`), cfg);
    const latents = await ctx.gpuTensor('lrm.noisy_latents');
    const text = model.encodeText(b.prompts);
    try {
      const unetKeys = new Set(model.unet.stateDict().keys());
      const upPath = caseCfg.parameters_without_path_to_loss ?? [];
      ctx.compare('up-path parameters built into the LRM (must be none)', [upPath.filter((k) => unetKeys.has(k)).length], [0], EXACT);
      const expected = ctx.outputs().map(([n]) => n).filter((n) => n.startsWith('grad.lrm.unet.')).map((n) => n.slice('grad.lrm.unet.'.length));
      ctx.compare('truncated U-Net parameters = reference gradient keys (count of differences)', [[...unetKeys].filter((k) => !expected.includes(k)).length + expected.filter((k) => !unetKeys.has(k)).length], [0], EXACT);

      d = model.scoreDetails(latents, b.timesteps, text);
      const loss = pairLoss(d.scores, b.labels);
      await ctx.produce('lrm.scores', await d.scores.toArray(), d.scores.shape);
      await ctx.produce('lrm.loss', await loss.loss.toArray(), loss.loss.shape);
      backward(loss.loss);
      for (const t of [loss.logits, loss.probs, loss.perPair, loss.loss]) t.dispose();
      const listed = new Set(ctx.outputs().map(([n]) => n));
      for (const [k, p] of model.unet.namedParameters()) {
        if (listed.has(`grad.lrm.unet.${k}`) && p.grad) await ctx.produce(`grad.lrm.unet.${k}`, await p.grad.toArray(), p.grad.shape);
      }
      for (const [k, p] of model.textEncoder.namedParameters()) {
        if (!p.grad) continue;
        if (k === TOKEN_EMBEDDING) await tokenEmbeddingGrad(ctx, p.grad, model.tokenizer.encodeBatch([...text.prompts, ...(text.nullRow >= 0 ? [model.config.nullPrompt] : [])]).flat());
        else if (listed.has(`grad.lrm.text_encoder.${k}`)) await ctx.produce(`grad.lrm.text_encoder.${k}`, await p.grad.toArray(), p.grad.shape);
      }
      for (const k of ['text_projection.weight', 'visual_projection.weight', 'logit_scale']) {
        const g = model.stateDict().get(k)?.grad;
        if (g && listed.has(`grad.lrm.${k}`)) await ctx.produce(`grad.lrm.${k}`, await g.toArray(), g.shape);
      }
    } finally {
      if (d) for (const t of new Set(Object.values(d).flat())) (t as Tensor | null)?.dispose();
      text.dispose();
      latents.dispose();
      model.dispose();
    }
  },
};
