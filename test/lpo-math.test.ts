// LPO's step math against float64 references on random inputs: the DDIM log-probability (per-element mean)
// and its gradient w.r.t. ε̂, the clamped-ratio loss from ε̂ (clamped samples get zero gradient), the dynamic
// thresholds at the spec's timesteps, pair selection on hand-made scores, step-wise GRPO and the Gaussian KL.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { f32round, randn64, relL2, setupGpu } from './helpers.js';
import { stepDpoRef } from './ref/dpo.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { DDIMScheduler, LOG_SQRT_2PI } from '../src/diffusion/ddim.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { candidateLogProbs, lpoLossFromLogProbs, pairLogProbs } from '../src/lpo/loss.js';
import { scoreGapFor, SD15_THRESHOLD, threshold, SIGMA_TABLE, VARIANCE_TABLE } from '../src/lpo/threshold.js';
import { selectPairs } from '../src/lpo/select.js';
import { gaussianKL, groupAdvantages, grpoLoss } from '../src/lpo/grpo.js';
import { ArgumentError, ShapeError } from '../src/errors.js';

const ROOT = resolve(__dirname, '..');
const GOLDEN = [join(ROOT, 'test/fixtures/golden'), resolve(ROOT, '../shared/golden')].find((d) => existsSync(join(d, 'ddim/scheduler_config.json')))!;
let sched: DDIMScheduler;

beforeAll(async () => {
  await setupGpu();
  sched = DDIMScheduler.fromFile(join(GOLDEN, 'ddim/scheduler_config.json'));
  sched.setTimesteps(20);
});

const T = (a: ArrayLike<number>, shape: number[]) => Tensor.fromArray(Float32Array.from(a), shape);

/** float64 μ of item b: meanX·x + meanOut·ε with the scheduler's float64 scalars. */
function mean64(x: Float64Array, eps: Float64Array, ts: number[], D: number): Float64Array {
  const mu = new Float64Array(x.length);
  ts.forEach((t, b) => {
    const s = sched.stepScalars(t, 1);
    for (let i = 0; i < D; i++) mu[b * D + i] = s.meanX * x[b * D + i] + s.meanOut * eps[b * D + i];
  });
  return mu;
}

function logp64(xp: Float64Array, mu: Float64Array, ts: number[], D: number): Float64Array {
  return Float64Array.from(ts, (t, b) => {
    const s = sched.stepScalars(t, 1).stdDevT;
    let acc = 0;
    for (let i = 0; i < D; i++) acc += -((xp[b * D + i] - mu[b * D + i]) ** 2) / (2 * s * s) - Math.log(s) - LOG_SQRT_2PI;
    return acc / D;
  });
}

describe('log-probability of a DDIM η = 1 step', () => {
  it('pairLogProbs matches float64 (per-element mean) and its ε̂ gradient matches the analytic one (relL2 < 1e-5)', async () => {
    const gen = new Generator(11);
    const ts = [951, 501, 51, 1];
    const [B, C, H, W] = [4, 3, 5, 7];
    const D = C * H * W;
    const x = f32round(randn64(gen, B * D));
    const eps = f32round(randn64(gen, B * D));
    const mu = mean64(x, eps, ts, D);
    const std = ts.map((t) => sched.stepScalars(t, 1).stdDevT);
    // x' near μ (as sampled), so the log-probabilities are realistic.
    const xw = f32round(mu.map((m, i) => m + std[Math.floor(i / D)] * gen.normal()));
    const xl = f32round(mu.map((m, i) => m + std[Math.floor(i / D)] * gen.normal()));
    const leaf = requireGrad(T(eps, [B, C, H, W]));
    const r = pairLogProbs(sched, leaf, ts, T(x, [B, C, H, W]), T(xw, [B, C, H, W]), T(xl, [B, C, H, W]), 1);
    const [w, l] = [await r.w.toArray(), await r.l.toArray()];
    const ew = logp64(xw, mu, ts, D);
    const el = logp64(xl, mu, ts, D);
    console.log(`logp relL2: w ${relL2(w, ew).toExponential(2)}, l ${relL2(l, el).toExponential(2)}`);
    expect(relL2(w, ew)).toBeLessThan(1e-5);
    expect(relL2(l, el)).toBeLessThan(1e-5);
    // L = Σ_b c_w[b]·logp_w[b] + c_l[b]·logp_l[b]: dL/dε = meanOut·(c_w(x_w − μ) + c_l(x_l − μ))/(σ² D)
    const cw = f32round(randn64(gen, B));
    const cl = f32round(randn64(gen, B));
    const { add, mul } = await import('../src/tensor/ops/elementwise.js');
    const { sumAll } = await import('../src/tensor/ops/reduce.js');
    backward(sumAll(add(mul(r.w, T(cw, [B])), mul(r.l, T(cl, [B])))));
    const g = await leaf.grad!.toArray();
    const want = new Float64Array(B * D);
    ts.forEach((t, b) => {
      const s = sched.stepScalars(t, 1);
      for (let i = 0; i < D; i++) {
        const k = b * D + i;
        want[k] = (s.meanOut * (cw[b] * (xw[k] - mu[k]) + cl[b] * (xl[k] - mu[k]))) / (s.stdDevT ** 2 * D);
      }
    });
    console.log(`d logp / d eps relL2 ${relL2(g, want).toExponential(2)}`);
    expect(relL2(g, want)).toBeLessThan(1e-5);
  });

  it('candidateLogProbs: K candidates per item against their shared mean (k-major rows), float64 and gradcheck', async () => {
    const gen = new Generator(12);
    const [K, B, C, H, W] = [3, 2, 2, 3, 5];
    const D = C * H * W;
    const std = [0.3, 0.05];
    const mu = f32round(randn64(gen, B * D));
    const cands = f32round(Float64Array.from({ length: K * B * D }, (_, i) => mu[i % (B * D)] + std[Math.floor((i % (B * D)) / D)] * gen.normal()));
    const got = await candidateLogProbs(T(cands, [K * B, C, H, W]), T(mu, [B, C, H, W]), std, K).toArray();
    const want = Float64Array.from({ length: K * B }, (_, r) => {
      const b = r % B;
      let acc = 0;
      for (let i = 0; i < D; i++) acc += -((cands[r * D + i] - mu[b * D + i]) ** 2) / (2 * std[b] ** 2) - Math.log(std[b]) - LOG_SQRT_2PI;
      return acc / D;
    });
    expect(relL2(got, want)).toBeLessThan(1e-5);
    const res = await gradcheck((m) => candidateLogProbs(T(cands, [K * B, C, H, W]), m, std, K), [T(mu, [B, C, H, W])], { eps: 1e-2 });
    expect(res.ok, `worst ratio ${res.worstRatio}`).toBe(true);
    expect(() => candidateLogProbs(T(cands, [K * B, C, H, W]), T(mu, [B, C, H, W]), std, K + 1)).toThrow(ShapeError);
  });
});

describe('LPO loss from the policy ε̂', () => {
  it('matches float64 (value and dL/dε̂, relL2 < 1e-4: β = 500 amplifies log-ratio noise ~100×); clamped pairs get exactly zero gradient', async () => {
    const gen = new Generator(21);
    const ts = [951, 501, 251, 51, 1, 951, 501];
    const spread = [0.05, 0.3, 0.8, 0.02, 1.0, 3.0, 0.1];
    const P = ts.length;
    const [C, H, W] = [2, 3, 5];
    const D = C * H * W;
    const x = f32round(randn64(gen, P * D));
    const epsRef = f32round(randn64(gen, P * D));
    const epsPol = f32round(epsRef.map((v, i) => v + spread[Math.floor(i / D)] * gen.normal()));
    const muRef = mean64(x, epsRef, ts, D);
    const muPol = mean64(x, epsPol, ts, D);
    const std = ts.map((t) => sched.stepScalars(t, 1).stdDevT);
    const xw = f32round(muRef.map((m, i) => m + std[Math.floor(i / D)] * gen.normal()));
    const xl = f32round(muRef.map((m, i) => m + std[Math.floor(i / D)] * gen.normal()));
    const ref = stepDpoRef(logp64(xw, muPol, ts, D), logp64(xw, muRef, ts, D), logp64(xl, muPol, ts, D), logp64(xl, muRef, ts, D), 500, 0.1);
    const shape = [P, C, H, W];
    const leaf = requireGrad(T(epsPol, shape));
    const args = [ts, T(x, shape), T(xw, shape), T(xl, shape), 1] as const;
    const r = pairLogProbs(sched, T(epsRef, shape), ...args);
    const p = pairLogProbs(sched, leaf, ...args);
    const loss = lpoLossFromLogProbs(p, r, { beta: 500, clipEps: 0.1 });
    const value = await loss.item();
    backward(loss);
    const g = await leaf.grad!.toArray();
    const want = new Float64Array(P * D);
    ts.forEach((t, b) => {
      const s = sched.stepScalars(t, 1);
      for (let i = 0; i < D; i++) {
        const k = b * D + i;
        want[k] = (s.meanOut * (ref.grad.pw[b] * (xw[k] - muPol[k]) + ref.grad.pl[b] * (xl[k] - muPol[k]))) / (s.stdDevT ** 2 * D);
      }
    });
    const clampedBoth = ts.map((_, b) => ref.grad.pw[b] === 0 && ref.grad.pl[b] === 0);
    const inBand = ts.map((_, b) => ref.grad.pw[b] !== 0 && ref.grad.pl[b] !== 0);
    console.log(`LPO loss ${value} vs ${ref.loss} (rel ${(Math.abs(value - ref.loss) / ref.loss).toExponential(2)}); dL/deps relL2 ${relL2(g, want).toExponential(2)}; clamped pairs ${clampedBoth.filter(Boolean).length}, in-band ${inBand.filter(Boolean).length}`);
    expect(clampedBoth.some(Boolean) && inBand.some(Boolean)).toBe(true); // the cases cover both
    expect(Math.abs(value - ref.loss) / ref.loss).toBeLessThan(1e-4);
    expect(relL2(g, want)).toBeLessThan(1e-4);
    clampedBoth.forEach((c, b) => {
      if (c) expect(g.subarray(b * D, (b + 1) * D).every((v) => v === 0), `pair ${b} is clamped`).toBe(true);
    });
  });
});

describe('dynamic thresholds (LPO-SPEC §4.2, range [0.35, 0.50])', () => {
  it('sigma strategy at t = 1, 101, 501, 951 equals the spec (0.350, 0.385, 0.448, 0.500) and the float64 formula', () => {
    const spec: [number, number][] = [[1, 0.35], [101, 0.385], [501, 0.448], [951, 0.5]];
    for (const [t, v] of spec) {
      const th = threshold(SD15_THRESHOLD, t);
      const f64 = 0.35 + ((SIGMA_TABLE[Math.floor(t / 50)] - SIGMA_TABLE[0]) / (SIGMA_TABLE[19] - SIGMA_TABLE[0])) * 0.15;
      expect(Math.abs(th - v), `t = ${t}`).toBeLessThan(5e-4);
      expect(Math.abs(th - f64) / f64).toBeLessThan(1e-6);
    }
    expect(scoreGapFor(threshold(SD15_THRESHOLD, 1))).toBeCloseTo(0.731, 3);
    expect(scoreGapFor(threshold(SD15_THRESHOLD, 951))).toBeCloseTo(1.099, 3);
  });

  it('variance, linear and constant strategies; bad configs and off-table timesteps are ArgumentErrors', () => {
    const r: [number, number] = [0.2, 0.6];
    for (const t of [1, 51, 451, 951]) {
      const v = 0.2 + ((VARIANCE_TABLE[Math.floor(t / 50)] - VARIANCE_TABLE[0]) / (VARIANCE_TABLE[19] - VARIANCE_TABLE[0])) * 0.4;
      expect(Math.abs(threshold({ strategy: 'variance', range: r }, t) - v)).toBeLessThan(1e-6);
      expect(Math.abs(threshold({ strategy: 'linear', range: r }, t) - (0.2 + ((t - 1) / 950) * 0.4))).toBeLessThan(1e-6);
      expect(threshold({ strategy: 'constant', value: 0.3 }, t)).toBe(0.3);
    }
    expect(() => threshold(SD15_THRESHOLD, 1000)).toThrow(ArgumentError);
    expect(() => threshold({ strategy: 'sigma', range: [0.6, 0.2] }, 1)).toThrow(ArgumentError);
    expect(() => threshold({ strategy: 'constant' }, 1)).toThrow(ArgumentError);
  });
});

describe('pair selection (preference_score_compare)', () => {
  it('winner = argmax, loser = argmin, p = softmax over those two only, valid iff p_w − p_l > th(t)', () => {
    // K = 4 rows × B = 4 columns, [K, B] row-major.
    const cols = [[2.0, 0.1, 0.5, -1.0], [0.3, 0.2, 0.25, 0.1], [0.7, 0.7, 0.7, 0.7], [0, 5, 1, 0.5]];
    const scores = Array.from({ length: 16 }, (_, i) => cols[i % 4][Math.floor(i / 4)]);
    const s = selectPairs(scores, 4, 4, [951, 951, 1, 1], SD15_THRESHOLD);
    expect(s.winner).toEqual([0, 0, 0, 1]);
    expect(s.loser).toEqual([3, 3, 3, 0]);
    expect(s.valid).toEqual([true, false, false, true]);
    const gap = [3, 0.2, 0, 5];
    gap.forEach((g, b) => {
      expect(s.pWin[b]).toBeCloseTo(1 / (1 + Math.exp(-g)), 6);
      expect(s.pLose[b]).toBeCloseTo(1 - 1 / (1 + Math.exp(-g)), 6);
      expect(s.margin[b]).toBeCloseTo(g, 6);
    });
  });

  it('the comparison is strict: a gap exactly at the threshold is not a pair, a hair above is', () => {
    const s0 = selectPairs([1.5, 0.25], 2, 1, 501, SD15_THRESHOLD);
    const at = Math.fround(s0.pWin[0] - s0.pLose[0]);
    expect(selectPairs([1.5, 0.25], 2, 1, 501, { strategy: 'constant', value: at }).valid[0]).toBe(false);
    expect(selectPairs([1.5, 0.25], 2, 1, 501, { strategy: 'constant', value: at - 1e-6 }).valid[0]).toBe(true);
    expect(() => selectPairs([1, 2, 3], 2, 2, 1, SD15_THRESHOLD)).toThrow(ShapeError);
  });
});

describe('step-wise GRPO', () => {
  it('advantages (unbiased std + 1e-4), loss and gradients w.r.t. log π_θ and the KL match float64', async () => {
    const gen = new Generator(31);
    const [K, B] = [4, 3];
    const n = K * B;
    const rewards = f32round(randn64(gen, n));
    const old = f32round(Float64Array.from({ length: n }, () => -1 - gen.uniform()));
    const delta = [0.01, -0.02, 0.3, -0.3, 0.05, 0.2, -0.15, 0.0, 0.12, -0.01, 0.5, 0.03];
    const lp = f32round(old.map((v, i) => v + delta[i]));
    const kl = f32round(Float64Array.from({ length: B }, () => gen.uniform()));
    const A = groupAdvantages(rewards, K, B, 1e-4);
    for (let b = 0; b < B; b++) {
      const r = Array.from({ length: K }, (_, k) => rewards[k * B + b]);
      const m = r.reduce((a, v) => a + v, 0) / K;
      const sd = Math.sqrt(r.reduce((a, v) => a + (v - m) ** 2, 0) / (K - 1));
      r.forEach((v, k) => expect(A[k * B + b]).toBeCloseTo((v - m) / (sd + 1e-4), 12));
    }
    const lpLeaf = requireGrad(T(lp, [K, B]));
    const klLeaf = requireGrad(T(kl, [B]));
    const loss = grpoLoss(lpLeaf, T(old, [K, B]), T(A, [K, B]), klLeaf, { clip: 0.1, klBeta: 0.1 });
    let want = 0;
    const gWant = new Float64Array(n);
    let clipped = 0;
    for (let i = 0; i < n; i++) {
      const rho = Math.exp(lp[i] - old[i]);
      const c = Math.min(Math.max(rho, 0.9), 1.1);
      want -= Math.min(rho * A[i], c * A[i]) / n;
      const clippedBranch = c * A[i] < rho * A[i];
      if (clippedBranch) clipped++;
      gWant[i] = clippedBranch ? 0 : (-A[i] * rho) / n;
    }
    want += (0.1 * kl.reduce((a, v) => a + v, 0)) / B;
    const v = await loss.item();
    backward(loss);
    const g = await lpLeaf.grad!.toArray();
    console.log(`GRPO loss ${v} vs ${want}; grad relL2 ${relL2(g, gWant).toExponential(2)}; clipped-branch candidates ${clipped}`);
    expect(clipped).toBeGreaterThan(0);
    expect(Math.abs(v - want) / Math.abs(want)).toBeLessThan(1e-5);
    expect(relL2(g, gWant)).toBeLessThan(1e-5);
    gWant.forEach((w, i) => { if (w === 0) expect(g[i] === 0, `candidate ${i}`).toBe(true); });
    expect(relL2(await klLeaf.grad!.toArray(), new Float64Array(B).fill(0.1 / B))).toBeLessThan(1e-6);
    expect(() => groupAdvantages(rewards, 1, n)).toThrow(ShapeError);
  });

  it('gaussianKL = mean_CHW (μ_θ − μ_ref)²/(2σ²) per item, float64 and gradcheck', async () => {
    const gen = new Generator(32);
    const [B, D] = [3, 35];
    const a = f32round(randn64(gen, B * D));
    const b = f32round(randn64(gen, B * D));
    const std = [0.6, 0.2, 0.02];
    const got = await gaussianKL(T(a, [B, 5, 7]), T(b, [B, 5, 7]), std).toArray();
    const want = Float64Array.from(std, (s, i) => {
      let acc = 0;
      for (let j = 0; j < D; j++) acc += (a[i * D + j] - b[i * D + j]) ** 2;
      return acc / D / (2 * s * s);
    });
    expect(relL2(got, want)).toBeLessThan(1e-6);
    const res = await gradcheck((x, y) => gaussianKL(x, y, [0.6, 0.5, 0.7]), [T(a, [B, 5, 7]), T(b, [B, 5, 7])]);
    expect(res.ok, `worst ratio ${res.worstRatio}`).toBe(true);
  });
});
