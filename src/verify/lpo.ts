// verify-reference section `lpo`: one LPO sampling/training step through our own LPO code (src/lpo): CFG ε̂,
// the DDIM η = 1 mean and σ_t, the K candidates, per-element-mean log-probabilities of the reference, a
// perturbed policy and an old policy, the LRM's scores of the candidates and the pair selection on them,
// the dynamic threshold, selection on given scores, the clamped-ratio loss and its gradients (given
// log-probabilities, then the model pairs back to the policy's ε̂), and step-wise GRPO. Settings and sizes
// come from cases.json and the files.
import { backward, noGrad, requireGrad } from '../autograd/tape.js';
import { DDIMScheduler } from '../diffusion/ddim.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { add, expandTo } from '../tensor/ops/elementwise.js';
import { concat, slice } from '../tensor/ops/layout.js';
import { cfgNoise } from '../lpo/cfg.js';
import { candidateLogProbs, ddimMean, lpoLossFromLogProbs, pairLogProbs } from '../lpo/loss.js';
import { candidatesFrom } from '../lpo/sampler.js';
import { selectPairs, type PairSelection } from '../lpo/select.js';
import { threshold, type ThresholdConfig } from '../lpo/threshold.js';
import { gaussianKL, groupAdvantages, grpoLoss } from '../lpo/grpo.js';
import { stepDpoLoss } from '../tensor/ops/dpo.js';
import { ReferenceDataError } from './manifest.js';
import { textEncoderOf, unetOf } from './models.js';
import { goldenLrm } from './lrm.js';
import type { SectionContext, SectionRunner } from './types.js';

interface LpoCases {
  prompts: string[];
  K: number;
  guidance_scale: number;
  eta: number;
  num_inference_steps: number;
  beta: number;
  eps: number;
  threshold_range: [number, number];
  grpo?: { clip_eps: number; kl_beta: number; adv_eps: number };
}

const f = Math.fround;

/** The scheduler of the folder's ddim section. */
export function schedulerOf(ctx: SectionContext): DDIMScheduler {
  const rel = Object.keys(ctx.manifest.sections.ddim?.files ?? {}).find((p) => /scheduler_config\.json$/.test(p));
  if (!rel) throw new ReferenceDataError('the ddim section lists no scheduler_config.json (the LPO step uses it)');
  return DDIMScheduler.fromFile(ctx.file(rel));
}

async function put(ctx: SectionContext, name: string, t: Tensor | ArrayLike<number>, shape?: readonly number[]): Promise<void> {
  if (t instanceof Tensor) await ctx.produce(name, await t.toArray(), shape ?? t.shape);
  else await ctx.produce(name, t, shape);
}

async function selectionRows(ctx: SectionContext, prefix: string, s: PairSelection): Promise<void> {
  const n = s.winner.length;
  await put(ctx, `${prefix}.indices`, [...s.winner, ...s.loser], [2, n]);
  await put(ctx, `${prefix}.valid`, s.valid.map(Number), [n]);
  await put(ctx, `${prefix}.p`, [...s.pWin, ...s.pLose], [2, n]);
}

export const lpoRunner: SectionRunner = {
  section: 'lpo',
  describe: 'one LPO step through src/lpo (CFG, DDIM mean/σ, K candidates, log-probs, LRM scores, threshold, selection, clamped loss + grads, GRPO)',
  async run(ctx) {
    const c = ctx.json<LpoCases>('cases.json');
    const th: ThresholdConfig = { strategy: 'sigma', range: c.threshold_range };
    const scheduler = schedulerOf(ctx);
    scheduler.setTimesteps(c.num_inference_steps);
    const [te, unet] = await Promise.all([textEncoderOf(ctx), unetOf(ctx)]);
    const ids = await ctx.tensor('input_ids');
    const negIds = await ctx.tensor('negative_input_ids');
    const ts = Array.from((await ctx.tensor('timesteps')).data);
    const B = ts.length;
    const K = c.K;
    const own: Tensor[] = [];
    const hold = <T extends Tensor>(t: T): T => { own.push(t); return t; };
    try {
      const pe = hold(noGrad(() => te.forward({ data: ids.data, shape: [ids.shape[0], ids.shape[1]] }).lastHiddenState));
      const ne = hold(noGrad(() => te.forward({ data: negIds.data, shape: [negIds.shape[0], negIds.shape[1]] }).lastHiddenState));
      await put(ctx, 'prompt_embeds', pe);
      await put(ctx, 'negative_prompt_embeds', ne);
      const x = hold(await ctx.gpuTensor('latents'));

      // CFG: the two halves (for the report) and our guided ε̂.
      const halves = hold(noGrad(() => tidy(() => unet.forward(concat([x, x], 0), [...ts, ...ts], concat([expandTo(ne, pe.shape), pe], 0)).sample)));
      await put(ctx, 'eps.uncond', hold(slice(halves, 0, { end: B })));
      await put(ctx, 'eps.text', hold(slice(halves, 0, { start: B, end: 2 * B })));
      const eps = hold(noGrad(() => cfgNoise(unet, x, ts, pe, ne, c.guidance_scale)));
      await put(ctx, 'eps.cfg', eps);

      const step = noGrad(() => scheduler.stepWithLogProb(eps, ts, x, { eta: c.eta, prevSample: x }));
      [step.logProb, step.prevSample, step.predOriginalSample, step.mean].forEach(hold);
      const std = step.stdDevT;
      await put(ctx, 'pred_original_sample', step.predOriginalSample);
      await put(ctx, 'std_dev_t', std);
      await put(ctx, 'prev_sample_mean', step.mean);
      const z = hold(await ctx.gpuTensor('variance_noise'));
      const cands = hold(candidatesFrom(step.mean, std, z));
      await put(ctx, 'candidates', cands, z.shape);
      await put(ctx, 'logp.ref', hold(candidateLogProbs(cands, step.mean, std, K)), [K, B]);

      const perturbed = async (delta: string) => {
        const e = hold(add(eps, hold(await ctx.gpuTensor(delta))));
        const m = noGrad(() => ddimMean(scheduler, e, ts, x, c.eta).mean);
        return { eps: e, mean: hold(m), logp: hold(candidateLogProbs(cands, m, std, K)) };
      };
      const pol = await perturbed('policy.eps_delta');
      const old = await perturbed('old.eps_delta');
      await put(ctx, 'policy.eps_cfg', pol.eps);
      await put(ctx, 'policy.prev_sample_mean', pol.mean);
      await put(ctx, 'logp.policy', pol.logp, [K, B]);
      await put(ctx, 'logp.old', old.logp, [K, B]);

      // The LRM's scores of the candidates (row k·B + b: case b's prompt and t) and the selection on them. Without a
      // working LRM those rows are SKIPPED and the model pairs come from the reference's own selection.
      let modelSel = await lrmSelection(ctx, c, cands, ts, K, th);
      if (!modelSel) {
        const ref = await ctx.tensor('select.model.indices');
        modelSel = { winner: Array.from(ref.data.subarray(0, B)), loser: Array.from(ref.data.subarray(B, 2 * B)), valid: [], pWin: [], pLose: [], threshold: [], margin: [] };
      }

      const thT = Array.from((await ctx.tensor('threshold.timesteps')).data);
      await put(ctx, 'threshold.values', thT.map((t) => threshold(th, t)));
      const sel = await ctx.tensor('select.scores');
      const selT = Array.from((await ctx.tensor('select.timesteps')).data);
      const given = selectPairs(sel.data, sel.shape[0], sel.shape[1], selT, th);
      await put(ctx, 'select.threshold', given.threshold);
      await selectionRows(ctx, 'select', given);

      await givenLossRows(ctx, c);

      // loss_model: the LPO loss of the model pairs (winner/loser from our LRM selection), back to the policy ε̂.
      const rows = (idx: number[]) => hold(tidy(() => concat(idx.map((k, b) => slice(cands, 0, { start: k * B + b, end: k * B + b + 1 })), 0)));
      const xw = rows(modelSel.winner);
      const xl = rows(modelSel.loser);
      const ref = noGrad(() => pairLogProbs(scheduler, eps, ts, x, xw, xl, c.eta));
      [ref.w, ref.l, ref.mean].forEach(hold);
      const leaf = hold(requireGrad(Tensor.fromArray(await pol.eps.toArray(), pol.eps.shape)));
      const lp = pairLogProbs(scheduler, leaf, ts, x, xw, xl, c.eta);
      const loss = hold(lpoLossFromLogProbs(lp, ref, { beta: c.beta, clipEps: c.eps }));
      backward(loss);
      [lp.w, lp.l, lp.mean].forEach((t) => t.dispose());
      await put(ctx, 'loss_model.value', loss);
      await put(ctx, 'loss_model.grad_eps_policy', hold(leaf.grad!));
      leaf.grad = null;

      await grpoRows(ctx, c, { scheduler, x, ts, K, B, std, cands, refMean: step.mean, polEps: pol.eps, polLogp: pol.logp, oldLogp: old.logp, eta: c.eta });
    } finally {
      for (const t of own) t.dispose();
    }
  },
};

async function lrmSelection(ctx: SectionContext, c: LpoCases, cands: Tensor, ts: number[], K: number, th: ThresholdConfig): Promise<PairSelection | null> {
  const B = ts.length;
  let lrm: Awaited<ReturnType<typeof goldenLrm>>['model'];
  try {
    lrm = (await goldenLrm(ctx)).model;
  } catch (e) {
    for (const name of ['lrm_scores', 'select.model.indices', 'select.model.valid', 'select.model.p']) {
      ctx.row({ name, metric: '-', value: null, tol: null, status: 'SKIPPED', note: `the LRM is not available: ${(e as Error).message}` });
    }
    return null;
  }
  try {
    const scores = noGrad(() => lrm.score(cands, Array.from({ length: K * B }, (_, i) => ts[i % B]), Array.from({ length: K * B }, (_, i) => c.prompts[i % B])));
    const sv = await scores.toArray();
    scores.dispose();
    await put(ctx, 'lrm_scores', sv, [K, B]);
    const sel = selectPairs(sv, K, B, ts, th);
    await selectionRows(ctx, 'select.model', sel);
    return sel;
  } finally {
    lrm.dispose();
  }
}

/** loss.*: the clamped-ratio loss of the given log-probabilities and its four gradients. */
async function givenLossRows(ctx: SectionContext, c: LpoCases): Promise<void> {
  const names = ['loss.logp_policy_w', 'loss.logp_ref_w', 'loss.logp_policy_l', 'loss.logp_ref_l'] as const;
  const host = await Promise.all(names.map((n) => ctx.tensor(n)));
  const leaves = host.map((h) => requireGrad(Tensor.fromArray(h.data, h.shape)));
  try {
    for (const side of ['w', 'l'] as const) {
      const [p, r] = side === 'w' ? [host[0].data, host[1].data] : [host[2].data, host[3].data];
      const delta = Array.from(p, (v, i) => f(v - r[i]));
      const e = delta.map((d) => f(Math.exp(d)));
      await put(ctx, `loss.delta_${side}`, delta);
      await put(ctx, `loss.ratio_${side}`, e.map((v) => Math.min(Math.max(v, f(1 - c.eps)), f(1 + c.eps))));
      await put(ctx, `loss.in_band_${side}`, e.map((v) => Number(v >= f(1 - c.eps) && v <= f(1 + c.eps))));
    }
    const loss = stepDpoLoss(leaves[0], leaves[1], leaves[2], leaves[3], { beta: c.beta, eps: c.eps });
    backward(loss);
    await put(ctx, 'loss.value', loss);
    loss.dispose();
    for (let i = 0; i < 4; i++) await put(ctx, `loss.grad.${names[i].slice(5)}`, leaves[i].grad!);
  } finally {
    for (const l of leaves) { l.grad?.dispose(); l.dispose(); }
  }
}

interface GrpoInputs {
  scheduler: DDIMScheduler; x: Tensor; ts: number[]; K: number; B: number; std: number[]; cands: Tensor;
  refMean: Tensor; polEps: Tensor; polLogp: Tensor; oldLogp: Tensor; eta: number;
}

/** grpo.*: advantages, ratios, surrogate, KL, loss, and the gradients w.r.t. log π_θ and the policy ε̂. */
async function grpoRows(ctx: SectionContext, c: LpoCases, g: GrpoInputs): Promise<void> {
  const opts = { clip: c.grpo?.clip_eps ?? 0.1, klBeta: c.grpo?.kl_beta ?? 0.1 };
  const { K, B } = g;
  const rewards = await ctx.tensor('grpo.rewards');
  const adv = groupAdvantages(rewards.data, K, B, c.grpo?.adv_eps ?? 1e-4);
  await put(ctx, 'grpo.advantages', adv, [K, B]);
  const [lp, lo] = await Promise.all([g.polLogp.toArray(), g.oldLogp.toArray()]);
  const rho = lp.map((v, i) => f(Math.exp(f(v - lo[i]))));
  const clampR = (r: number) => Math.min(Math.max(r, 1 - opts.clip), 1 + opts.clip);
  await put(ctx, 'grpo.ratio', rho, [K, B]);
  await put(ctx, 'grpo.surrogate', Array.from(rho, (r, i) => Math.min(r * adv[i], clampR(r) * adv[i])), [K, B]);
  await put(ctx, 'grpo.clipped_branch', Array.from(rho, (r, i) => Number(clampR(r) * adv[i] < r * adv[i])), [K, B]);
  const advT = Tensor.fromArray(adv, [K * B]);
  const own: Tensor[] = [advT];
  try {
    const kl = noGrad(() => gaussianKL(noGrad(() => ddimMean(g.scheduler, g.polEps, g.ts, g.x, g.eta).mean), g.refMean, g.std));
    own.push(kl);
    await put(ctx, 'grpo.kl', kl);
    // d loss / d log π_θ (the KL term does not depend on these log-probabilities).
    const lpLeaf = requireGrad(Tensor.fromArray(lp, [K * B]));
    own.push(lpLeaf);
    const l1 = grpoLoss(lpLeaf, g.oldLogp, advT, kl, opts);
    backward(l1);
    own.push(l1, lpLeaf.grad!);
    await put(ctx, 'grpo.grad.logp_policy', lpLeaf.grad!, [K, B]);
    // The whole objective from the policy's ε̂: through μ_θ into the log-probabilities and the KL.
    const leaf = requireGrad(Tensor.fromArray(await g.polEps.toArray(), g.polEps.shape));
    own.push(leaf);
    const loss = tidy(() => {
      const { mean, std } = ddimMean(g.scheduler, leaf, g.ts, g.x, g.eta);
      return grpoLoss(candidateLogProbs(g.cands, mean, std, K), g.oldLogp, advT, gaussianKL(mean, g.refMean, std), opts);
    });
    own.push(loss);
    backward(loss);
    own.push(leaf.grad!);
    await put(ctx, 'grpo.loss', loss);
    await put(ctx, 'grpo.grad.eps_policy', leaf.grad!);
  } finally {
    for (const t of own) t.dispose();
  }
}
