// `npx vite-node --config vitest.config.ts scripts/toy-lrm-study.ts -- --dir DIR [options]`: why the toy LRM
// does or does not learn the hidden preference. It (1) makes a pair set from the base model once (DIR/noisy with
// the annotators' coin-flip labels, DIR/truth with the hidden preference's own verdict), (2) fits a logistic
// probe on the base U-Net's pooled LRM features of clean latents (how much of the preference those features
// carry before any training), and (3) trains an LRM with the given settings and reports its accuracy on the
// validation prompts and on the training pairs by timestep, against the hidden preference.
//   --prompts 1000       prompts of the pair set (made only when DIR has none)
//   --steps 120 --batch 16 --lr 3e-4 --timesteps 1,51,…  LRM training (the demo's settings by default)
//   --labels noisy|truth which labels the LRM trains on; --min-gap G keeps training pairs whose preference gap > G
//   --vfe W              the LRM's VFE weight (default: the LRM-1.5 value, 7.5; 1 runs no null pass)
//   --freeze-unet        train only the text encoder, the projections and τ; --no-probe / --no-train skip a part
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { initGpu } from '../src/gpu/runtime.js';
import { noGrad } from '../src/autograd/tape.js';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.js';
import { openPairs } from '../src/io/pairs/index.js';
import type { PairDataset, PairMeta, PairRow } from '../src/io/pairs/types.js';
import { LatentRewardModel } from '../src/lrm/model.js';
import { trainLrm } from '../src/lrm/train.js';
import { cleanLatents, pairPrompts, PairDraws } from '../src/lrm/batch.js';
import { evaluateLrm } from '../src/lrm/eval.js';
import { LRM_TIMESTEPS } from '../src/lrm/schedule.js';
import { generatePairs, pairStats, truthLabelled, writeToyPairs } from '../src/toy/pairs.js';

const { values: v } = parseArgs({
  options: {
    dir: { type: 'string', default: 'out/lrm-study' }, model: { type: 'string', default: 'assets/toy/base' },
    prompts: { type: 'string', default: '1000' }, seed: { type: 'string', default: '0' },
    steps: { type: 'string', default: '120' }, batch: { type: 'string', default: '16' }, lr: { type: 'string', default: '3e-4' },
    timesteps: { type: 'string' }, vfe: { type: 'string' }, labels: { type: 'string', default: 'noisy' }, 'min-gap': { type: 'string' },
    'freeze-unet': { type: 'boolean', default: false }, 'no-probe': { type: 'boolean', default: false }, 'no-train': { type: 'boolean', default: false },
  },
});
await initGpu();
const t0 = Date.now();
const log = (m: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${m}`);
const dir = v.dir!;
const seed = Number(v.seed);
const lrmOptions = { seed, config: v.vfe !== undefined ? { vfeWeight: Number(v.vfe) } : {} };

// 1. The pair set (made once; later runs reuse it).
if (!fs.existsSync(`${dir}/truth/pairs.jsonl`)) {
  const pipe = await StableDiffusionPipeline.fromPretrained(v.model!);
  const pairs = await generatePairs(pipe, { prompts: Number(v.prompts), seed: seed + 1, steps: 10, validationFraction: 0.25, onProgress: (d, n) => log(`pairs: ${d}/${n} images`) });
  const shape = [4, pipe.sampleSize, pipe.sampleSize];
  await writeToyPairs(`${dir}/noisy`, pairs, shape, { overwrite: true });
  await writeToyPairs(`${dir}/truth`, pairs.map(truthLabelled), shape, { overwrite: true });
  log(`pair set: ${JSON.stringify(pairStats(pairs))}`);
  pipe.dispose();
}
const latentShape: [number, number, number] = [4, 8, 8];
const open = (labels: string, split: 'train' | 'validation') => openPairs(`${dir}/${labels}`, { split, latentShape });
const valTruth = await open('truth', 'validation');
const trainTruth = await open('truth', 'train');

/** Pooled LRM features (the input of visual_projection) of both clean latents of every decided pair, at t = 1. */
async function pairFeatures(lrm: LatentRewardModel, ds: PairDataset): Promise<{ x: Float64Array[]; y: number[] }> {
  const rows: PairRow[] = [];
  for await (const r of ds.rows({ images: false })) if (r.label0 !== 0.5) rows.push(r);
  const x: Float64Array[] = [];
  for (let i = 0; i < rows.length; i += 32) {
    const b = rows.slice(i, i + 32);
    // Pre-encoded latents, laid out [image 0 of every pair; image 1 of every pair] (the draws are unused).
    const z = cleanLatents(b, { latentShape, scalingFactor: lrm.config.scalingFactor }, new PairDraws(0));
    const text = noGrad(() => lrm.encodeText(pairPrompts(b)));
    const f = noGrad(() => lrm.imageFeatures(z, 1, text));
    const c = await f.concat.toArray();
    const D = f.concat.shape[1];
    for (const t of [...f.pooled, f.midText, f.midNull, f.midVfe, f.concat, f.V, text, z]) t?.dispose();
    // The probe sees image 0 − image 1: a prompt-independent linear preference (aesthetics, clutter, counts).
    for (let k = 0; k < b.length; k++) x.push(Float64Array.from({ length: D }, (_, d) => c[k * D + d] - c[(b.length + k) * D + d]));
  }
  return { x, y: rows.map((r) => r.label0) };
}

/** Ridge-regularised logistic regression without bias (the probe is antisymmetric), by Newton's method. */
function fitProbe(x: Float64Array[], y: number[], lambda: number): Float64Array {
  const D = x[0].length;
  const w = new Float64Array(D);
  for (let it = 0; it < 50; it++) {
    const g = Float64Array.from(w, (wi) => lambda * wi);
    const H = Array.from({ length: D }, (_, i) => Float64Array.from({ length: D }, (_, j) => (i === j ? lambda : 0)));
    x.forEach((xi, n) => {
      const p = 1 / (1 + Math.exp(-xi.reduce((s, a, d) => s + a * w[d], 0)));
      const r = p * (1 - p);
      for (let i = 0; i < D; i++) {
        g[i] += (p - y[n]) * xi[i];
        for (let j = 0; j < D; j++) H[i][j] += r * xi[i] * xi[j];
      }
    });
    // Solve H·step = g (Gaussian elimination with partial pivoting).
    for (let c = 0; c < D; c++) {
      let piv = c;
      for (let r = c + 1; r < D; r++) if (Math.abs(H[r][c]) > Math.abs(H[piv][c])) piv = r;
      [H[c], H[piv]] = [H[piv], H[c]];
      [g[c], g[piv]] = [g[piv], g[c]];
      for (let r = c + 1; r < D; r++) {
        const f = H[r][c] / H[c][c];
        for (let k = c; k < D; k++) H[r][k] -= f * H[c][k];
        g[r] -= f * g[c];
      }
    }
    for (let c = D - 1; c >= 0; c--) {
      let s = g[c];
      for (let k = c + 1; k < D; k++) s -= H[c][k] * g[k];
      g[c] = s / H[c][c];
    }
    let change = 0;
    for (let d = 0; d < D; d++) { w[d] -= g[d]; change += g[d] * g[d]; }
    if (change < 1e-12) break;
  }
  return w;
}
const probeAccuracy = (x: Float64Array[], y: number[], w: Float64Array) =>
  x.reduce((s, xi, n) => s + ((xi.reduce((a, b, d) => a + b * w[d], 0) > 0) === (y[n] > 0.5) ? 1 : 0), 0) / x.length;

// 2. The probe on the base model's features.
if (!v['no-probe']) {
  const base = await LatentRewardModel.fromDiffusers(v.model!, lrmOptions);
  const tr = await pairFeatures(base, trainTruth);
  const va = await pairFeatures(base, valTruth);
  base.dispose();
  // Standardise each feature by its spread over the training pairs.
  const D = tr.x[0].length;
  const sd = Array.from({ length: D }, (_, d) => Math.sqrt(tr.x.reduce((s, xi) => s + xi[d] * xi[d], 0) / tr.x.length) || 1);
  for (const xi of [...tr.x, ...va.x]) for (let d = 0; d < D; d++) xi[d] /= sd[d];
  for (const lambda of [0.1, 1, 10, 100]) {
    const w = fitProbe(tr.x, tr.y, lambda);
    log(`probe (${D} pooled features, λ = ${lambda}): train ${(100 * probeAccuracy(tr.x, tr.y, w)).toFixed(1)}% of ${tr.x.length}, validation ${(100 * probeAccuracy(va.x, va.y, w)).toFixed(1)}% of ${va.x.length}`);
  }
}

// 3. An LRM trained with the given settings.
if (!v['no-train']) {
  const steps = Number(v.steps);
  const minGap = v['min-gap'] !== undefined ? Number(v['min-gap']) : null;
  // The preference gap from the gap columns (graded alignment 0.5, aesthetics 0.3; the match bonus is not in them).
  const where = minGap === null ? undefined : (m: PairMeta) => m.label0 !== 0.5 && Math.abs(0.5 * (m.gaps?.clip ?? 0) / 0.15 + 0.3 * (m.gaps?.aesthetic ?? 0) / 10) > minGap;
  const lrm = await LatentRewardModel.fromDiffusers(v.model!, lrmOptions);
  if (v['freeze-unet']) lrm.unet.freeze();
  const res = await trainLrm(lrm, await open(v.labels!, 'train'), null, {
    steps, batchSize: Number(v.batch), lr: Number(v.lr), warmupSteps: Math.max(1, Math.round(steps / 10)), seed, where,
    timesteps: v.timesteps ? v.timesteps.split(',').map(Number) : LRM_TIMESTEPS, log,
    onStep: (m) => { if (m.step % 20 === 0 || m.step === steps) log(`LRM step ${m.step}/${steps}: loss ${m.loss.toFixed(3)}, batch accuracy ${m.batchAccuracy.toFixed(2)}`); },
  });
  const T = [1, 251, 501, 751, 951];
  const fmt = (r: Awaited<ReturnType<typeof evaluateLrm>>) => r.byTimestep.map((e) => `t=${e.t} ${(100 * e.accuracy).toFixed(1)}%`).join(', ');
  log(`LRM trained ${res.steps} steps in ${res.seconds.toFixed(0)} s`);
  log(`validation prompts (hidden preference): ${fmt(await evaluateLrm(lrm, valTruth, { timesteps: T, seed: 5, batchPairs: 64 }))}`);
  log(`training pairs (first 300, hidden preference): ${fmt(await evaluateLrm(lrm, trainTruth, { timesteps: T, seed: 5, batchPairs: 64, maxPairs: 300 }))}`);
  lrm.dispose();
}
