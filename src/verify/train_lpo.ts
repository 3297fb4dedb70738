// verify-reference section `train`, case `lpo_lora`: one LPO step with LoRA adapters on the U-Net, through the
// library's own path (src/lpo lpoLoss): adapters added as the trainer adds them (rank, alpha, targets from
// config.json), the factors read from lora.safetensors by our strict diffusers-format loader, the policy and
// the LoRA-bypassed reference with CFG, the clamped-ratio loss, and the gradient of every LoRA factor. Also:
// a LoRA file we write has exactly the reference file's keys, shapes and values.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backward, noGrad, requireGrad } from '../autograd/tape.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { Tensor } from '../tensor/tensor.js';
import { UNet2DConditionModel } from '../nn/unet.js';
import { addLoRA, loraLayers } from '../nn/lora.js';
import { loadLoRA, loraKey, saveLoRA } from '../io/lora.js';
import { cfgNoise, referenceCfgNoise } from '../lpo/cfg.js';
import { disposeLossOutput, lpoLoss, lpoLossFromLogProbs, pairLogProbs } from '../lpo/loss.js';
import { schedulerOf } from './lpo.js';
import { sectionDir, textEncoderOf } from './models.js';
import type { TrainCaseRunner } from './train.js';
import type { SectionContext } from './types.js';

interface LpoLoraConfig {
  lora: { rank: number; alpha: number; target_modules: string[]; file: string };
  guidance_scale: number;
  eta: number;
  num_inference_steps: number;
  beta: number;
  eps: number;
}

const EXACT = { metric: 'exact' as const, tol: 0, rule: 'exact' };

/** Our saved file against the reference file: the same key set, shapes and (bit-exact) values. */
function compareFiles(ctx: SectionContext, ours: string, ref: string): void {
  const a = SafetensorsFile.openSync(ours);
  const b = SafetensorsFile.openSync(ref);
  try {
    const ka = a.keys().sort();
    const kb = b.keys().sort();
    const missing = kb.filter((k) => !a.has(k));
    const extra = ka.filter((k) => !b.has(k));
    ctx.row({
      name: 'lpo_lora.saved_file.keys', metric: 'exact', value: missing.length + extra.length, tol: 0,
      status: missing.length + extra.length === 0 ? 'PASS' : 'FAIL', note: missing.length + extra.length ? `missing ${missing.slice(0, 2)}, extra ${extra.slice(0, 2)}` : undefined,
    });
    const shared = kb.filter((k) => a.has(k));
    const badShape = shared.filter((k) => a.info(k).shape.join() !== b.info(k).shape.join() || a.info(k).dtype !== b.info(k).dtype);
    ctx.row({ name: 'lpo_lora.saved_file.shapes_dtypes', metric: 'exact', value: badShape.length, tol: 0, status: badShape.length ? 'FAIL' : 'PASS' });
    const va = shared.filter((k) => !badShape.includes(k)).flatMap((k) => Array.from(a.readF32Sync(k)));
    const vb = shared.filter((k) => !badShape.includes(k)).flatMap((k) => Array.from(b.readF32Sync(k)));
    ctx.compare('lpo_lora.saved_file.values', va, vb, EXACT);
  } finally {
    a.closeSync();
    b.closeSync();
  }
}

export const trainLpoCase: TrainCaseRunner = {
  case: 'lpo_lora',
  describe: 'LPO loss through the LoRA policy and the LoRA-bypassed reference (CFG) to every LoRA factor',
  async run(ctx) {
    const c = ctx.json<{ lpo_lora: LpoLoraConfig }>('config.json').lpo_lora;
    const scheduler = schedulerOf(ctx);
    scheduler.setTimesteps(c.num_inference_steps);
    const te = await textEncoderOf(ctx);
    const unet = await UNet2DConditionModel.fromPretrained(sectionDir(ctx, 'unet'));
    const own: Tensor[] = [];
    const hold = <T extends Tensor>(t: T): T => { own.push(t); return t; };
    const dir = mkdtempSync(join(tmpdir(), 'lpo-verify-lora-'));
    try {
      addLoRA(unet, { rank: c.lora.rank, alpha: c.lora.alpha, targets: c.lora.target_modules });
      const refFile = ctx.sectionFile(c.lora.file ?? 'lora.safetensors');
      await loadLoRA(unet, refFile);
      await saveLoRA(unet, join(dir, 'lora.safetensors'));
      compareFiles(ctx, join(dir, 'lora.safetensors'), refFile);
      // Each factor of the file we wrote, by its key, against the manifest's tensor of that name.
      const written = SafetensorsFile.openSync(join(dir, 'lora.safetensors'));
      try {
        for (const k of written.keys()) await ctx.produce(k, written.readF32Sync(k), written.info(k).shape);
      } finally {
        written.closeSync();
      }

      const enc = async (name: string) => {
        const ids = await ctx.tensor(name);
        return hold(noGrad(() => te.forward({ data: ids.data, shape: [ids.shape[0], ids.shape[1]] }).lastHiddenState));
      };
      const cond = await enc('lpo_lora.input_ids');
      const uncond = await enc('lpo_lora.negative_input_ids');
      await ctx.produce('lpo_lora.prompt_embeds', await cond.toArray(), cond.shape);
      await ctx.produce('lpo_lora.negative_prompt_embeds', await uncond.toArray(), uncond.shape);
      const xt = hold(await ctx.gpuTensor('lpo_lora.latents'));
      const xw = hold(await ctx.gpuTensor('lpo_lora.x_w'));
      const xl = hold(await ctx.gpuTensor('lpo_lora.x_l'));
      const ts = Array.from((await ctx.tensor('lpo_lora.timesteps')).data);
      const g = c.guidance_scale;
      const epsRef = hold(referenceCfgNoise(unet, xt, ts, cond, uncond, g));
      const epsPol = hold(noGrad(() => cfgNoise(unet, xt, ts, cond, uncond, g)));
      await ctx.produce('lpo_lora.eps_ref', await epsRef.toArray(), epsRef.shape);
      await ctx.produce('lpo_lora.eps_policy', await epsPol.toArray(), epsPol.shape);

      // The library's loss, backpropagated into the LoRA factors.
      const out = lpoLoss(unet, scheduler, { xt, timesteps: ts, cond, xw, xl }, uncond, { guidanceScale: g, eta: c.eta, beta: c.beta, clipEps: c.eps });
      backward(out.loss);
      await ctx.produce('lpo_lora.std_dev_t', out.policy.std, [ts.length]);
      await ctx.produce('lpo_lora.prev_sample_mean_ref', await out.reference.mean.toArray(), xt.shape);
      await ctx.produce('lpo_lora.prev_sample_mean_policy', await out.policy.mean.toArray(), xt.shape);
      const [pw, pl, rw, rl] = await Promise.all([out.policy.w, out.policy.l, out.reference.w, out.reference.l].map((t) => t.toArray()));
      const vals: Record<string, Float32Array> = { logp_policy_w: pw, logp_policy_l: pl, logp_ref_w: rw, logp_ref_l: rl };
      for (const [k, v] of Object.entries(vals)) await ctx.produce(`lpo_lora.${k}`, v, [v.length]);
      for (const [side, p, r] of [['w', pw, rw], ['l', pl, rl]] as const) {
        const lr = p.map((v, i) => v - r[i]);
        const e = lr.map((v) => Math.exp(v));
        await ctx.produce(`lpo_lora.log_ratio_${side}`, lr, [lr.length]);
        await ctx.produce(`lpo_lora.ratio_${side}`, e.map((v) => Math.min(Math.max(v, 1 - c.eps), 1 + c.eps)), [lr.length]);
        await ctx.produce(`lpo_lora.in_band_${side}`, Array.from(e, (v) => Number(v >= Math.fround(1 - c.eps) && v <= Math.fround(1 + c.eps))), [lr.length]);
      }
      await ctx.produce('lpo_lora.loss', await out.loss.toArray(), []);
      disposeLossOutput(out);
      for (const [path, l] of loraLayers(unet)) {
        for (const [f, t] of [['A', l.loraA], ['B', l.loraB]] as const) {
          const name = `grad.lora.${loraKey(path, f)}`;
          if (!t.grad) ctx.row({ name, metric: '-', value: null, tol: null, status: 'FAIL', note: 'no gradient reached it' });
          else await ctx.produce(name, await t.grad.toArray(), t.shape);
        }
      }

      // d loss / d ε̂_policy: the same loss from a leaf copy of the policy's ε̂ (no U-Net needed).
      const leaf = hold(requireGrad(Tensor.fromArray(await epsPol.toArray(), epsPol.shape)));
      const ref = noGrad(() => pairLogProbs(scheduler, epsRef, ts, xt, xw, xl, c.eta));
      const pol = pairLogProbs(scheduler, leaf, ts, xt, xw, xl, c.eta);
      const loss = hold(lpoLossFromLogProbs(pol, ref, { beta: c.beta, clipEps: c.eps }));
      backward(loss);
      for (const t of [ref.w, ref.l, ref.mean, pol.w, pol.l, pol.mean]) t.dispose();
      await ctx.produce('lpo_lora.grad.eps_policy', await leaf.grad!.toArray(), leaf.shape);
      hold(leaf.grad!);
      leaf.grad = null;
    } finally {
      for (const t of own) t.dispose();
      unet.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
