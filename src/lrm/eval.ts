// Held-out accuracy of an LRM (LPO-SPEC §2.4): each pair's two images noised to timestep t (the same noise at
// every t, drawn once per image from a fixed seed, so evaluations are comparable), scored with the pair's prompt;
// accuracy = (p0 > p1)·label_0 + (p0 < p1)·label_1 (a tie pair counts 0.5 whichever image wins).
import { ArgumentError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { noGrad } from '../autograd/tape.js';
import type { DDIMScheduler } from '../diffusion/ddim.js';
import type { PairDataset, PairMeta, PairRow } from '../io/pairs/types.js';
import type { AutoencoderKL } from '../nn/vae.js';
import { cleanLatents, PairDraws, pairPrompts } from './batch.js';
import { pairAccuracy } from './loss.js';
import type { LatentRewardModel } from './model.js';
import { lrmScheduler } from './noise.js';

export interface EvalLrmOptions {
  /** Timesteps to evaluate at (default: [1]); the authors validate at t = 1. */
  timesteps?: readonly number[];
  /** Seed of the evaluation noise (default 0): the same for every evaluation of a run. */
  seed?: number;
  /** Pairs per forward pass (default 8). */
  batchPairs?: number;
  /** At most this many pairs (default: all). */
  maxPairs?: number;
  vae?: AutoencoderKL;
  scheduler?: DDIMScheduler;
  where?: (meta: PairMeta) => boolean;
  /** Called after each batch with the pairs done so far. */
  onProgress?: (pairs: number) => void;
  /**
   * Further labellings of the same pairs (e.g. noise-free labels beside the annotators'), scored from the same
   * forward passes: their accuracies come back as `byTimestep[k].extra[j]`, in this order.
   */
  extraLabels?: readonly ((row: PairRow) => readonly [number, number])[];
}

export interface LrmEvalResult {
  pairs: number;
  /** Accuracy at each evaluated timestep, in the order given (`extra`: one per `extraLabels` entry). */
  byTimestep: { t: number; accuracy: number; extra: number[] }[];
}

/** Accuracy at t (undefined when t was not evaluated). */
export function accuracyAt(r: LrmEvalResult, t: number): number | undefined {
  return r.byTimestep.find((e) => e.t === t)?.accuracy;
}

export async function evaluateLrm(model: LatentRewardModel, data: PairDataset, opts: EvalLrmOptions = {}): Promise<LrmEvalResult> {
  const ts = [...(opts.timesteps ?? [1])];
  if (!ts.length) throw new ArgumentError('evaluateLrm: no timesteps');
  const batch = opts.batchPairs ?? 8;
  if (!Number.isInteger(batch) || batch < 1) throw new ArgumentError(`evaluateLrm: batchPairs must be a positive integer, got ${batch}`);
  const scheduler = opts.scheduler ?? lrmScheduler(model);
  const draws = new PairDraws(opts.seed ?? 0);
  const c = model.unet.config;
  const src = { vae: opts.vae, latentShape: [c.inChannels, model.config.sampleSize, model.config.sampleSize] as const, scalingFactor: model.config.scalingFactor };
  const extra = opts.extraLabels ?? [];
  const sums = new Float64Array(ts.length);
  const extraSums = ts.map(() => new Float64Array(extra.length));
  let pairs = 0;
  const run = async (rows: PairRow[]): Promise<void> => {
    const P = rows.length;
    const z0 = cleanLatents(rows, src, draws);
    const eps = Tensor.fromArray(draws.noiseFor(P, z0.size / z0.shape[0]), z0.shape);
    const text = noGrad(() => model.encodeText(pairPrompts(rows)));
    try {
      for (const [k, t] of ts.entries()) {
        const s = noGrad(() => {
          const x = scheduler.addNoise(z0, eps, t);
          try {
            return model.score(x, t, text);
          } finally {
            x.dispose();
          }
        });
        const v = await s.toArray();
        s.dispose();
        rows.forEach((r, i) => {
          sums[k] += pairAccuracy(v[i], v[P + i], r.label0, r.label1);
          extra.forEach((labels, j) => { extraSums[k][j] += pairAccuracy(v[i], v[P + i], ...labels(r)); });
        });
      }
    } finally {
      text.dispose();
      z0.dispose();
      eps.dispose();
    }
    pairs += P;
    opts.onProgress?.(pairs);
  };
  let buf: PairRow[] = [];
  const max = opts.maxPairs ?? Infinity;
  for await (const row of data.rows({ images: !!opts.vae, latents: true, where: opts.where })) {
    if (pairs + buf.length >= max) break;
    buf.push(row);
    if (buf.length === batch) {
      await run(buf);
      buf = [];
    }
  }
  if (buf.length) await run(buf);
  if (!pairs) throw new ArgumentError(`evaluateLrm: '${data.source}' yielded no pairs`);
  return { pairs, byTimestep: ts.map((t, k) => ({ t, accuracy: sums[k] / pairs, extra: [...extraSums[k]].map((x) => x / pairs) })) };
}
