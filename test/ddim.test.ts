// DDIM scheduler vs the golden diffusers data (ddim/ and the DDIM part of lpo/), plus float64 references.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2, randn64, f32round } from './helpers.js';
import { readSafetensors, type StTensor } from './ref/st.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { DDIMScheduler, ddimLogProb, ddimLogProbRef, LOG_SQRT_2PI } from '../src/diffusion/ddim.js';
import { ddimTimesteps, parseSchedulerConfig, torchLinspaceF32 } from '../src/diffusion/schedule.js';

const ROOT = resolve(__dirname, '..');
const GOLDEN = [join(ROOT, 'test/fixtures/golden'), resolve(ROOT, '../shared/golden')].find((d) => existsSync(join(d, 'ddim/cases.json')))!;
const DDIM = join(GOLDEN, 'ddim');

const cases = JSON.parse(readFileSync(join(DDIM, 'cases.json'), 'utf8'));
const config = JSON.parse(readFileSync(join(DDIM, 'scheduler_config.json'), 'utf8'));
let inputs: Map<string, StTensor>;
let outputs: Map<string, StTensor>;
const get = (m: Map<string, StTensor>, k: string) => {
  const t = m.get(k);
  if (!t) throw new Error(`golden tensor ${k} missing`);
  return t;
};
const tensorOf = (t: StTensor) => Tensor.fromArray(t.data, t.shape);

beforeAll(async () => {
  await setupGpu();
  inputs = readSafetensors(join(DDIM, 'inputs.safetensors'));
  outputs = readSafetensors(join(DDIM, 'outputs.safetensors'));
});

describe('DDIM schedule (host)', () => {
  it('timesteps for 20 and 50 steps match diffusers exactly', () => {
    const s = DDIMScheduler.fromConfig(config);
    for (const n of [20, 50]) {
      const ts = s.setTimesteps(n);
      expect(ts).toEqual(cases.timesteps[String(n)]);
      expect(ts).toEqual(Array.from(get(outputs, `timesteps.${n}`).data));
    }
  });

  it('betas and alphas_cumprod match diffusers float32 bit for bit (required: elementwise rel err < 1e-6)', () => {
    const s = DDIMScheduler.fromConfig(config);
    const gb = get(outputs, 'betas').data;
    const ga = get(outputs, 'alphas_cumprod').data;
    let worstB = 0;
    let worstA = 0;
    for (let i = 0; i < 1000; i++) {
      worstB = Math.max(worstB, Math.abs(s.betas[i] / gb[i] - 1));
      worstA = Math.max(worstA, Math.abs(s.alphasCumprod[i] / ga[i] - 1));
    }
    console.log(`betas max rel err ${worstB.toExponential(2)}, alphas_cumprod max rel err ${worstA.toExponential(2)}`);
    expect(worstA).toBeLessThan(1e-6);
    expect(worstA).toBe(0);
    expect(worstB).toBe(0);
    expect(s.finalAlphaCumprod).toBe(Math.fround(cases.final_alpha_cumprod));
  });

  it('per-case scalars (prev_t, ᾱ_t, ᾱ_prev, variance, σ_t) match cases.json', () => {
    const errs: number[] = [];
    for (const c of cases.step_cases) {
      const s = DDIMScheduler.fromConfig(config);
      s.setTimesteps(c.num_inference_steps);
      const sc = s.stepScalars(c.timestep, c.eta);
      expect(sc.prevT).toBe(c.prev_timestep);
      expect(sc.alphaProdT).toBe(c.alpha_prod_t);
      expect(sc.alphaProdTPrev).toBe(c.alpha_prod_t_prev);
      // cases.json's variance and σ_t were computed by diffusers in float32 (1 − ᾱ_t/ᾱ_prev cancels at t = 1);
      // ours are float64 from the same float32 alphas.
      errs.push(Math.abs(sc.variance / c.variance - 1));
      expect(Math.abs(sc.variance / c.variance - 1)).toBeLessThan(5e-5);
      if (c.eta > 0) expect(Math.abs(sc.stdDevT / c.std_dev_t - 1)).toBeLessThan(5e-5);
      else expect(sc.stdDevT).toBe(0);
      expect(s.stdDevT(c.timestep, c.prev_timestep, c.eta)).toBe(sc.stdDevT);
    }
    console.log(`variance rel err vs diffusers' float32 per case: ${errs.map((e) => e.toExponential(1)).join(', ')}`);
  });

  it('other spacings and schedules follow diffusers', () => {
    const base = { ...config };
    const trailing = ddimTimesteps(parseSchedulerConfig({ ...base, timestep_spacing: 'trailing' }), 20);
    expect(trailing[0]).toBe(999);
    expect(trailing[1]).toBe(949);
    expect(trailing.at(-1)).toBe(49);
    // np.round(np.arange(1000, 0, -1000/3)) - 1 = [999, 666, 332]
    expect(ddimTimesteps(parseSchedulerConfig({ ...base, timestep_spacing: 'trailing' }), 3)).toEqual([999, 666, 332]);
    const lin = ddimTimesteps(parseSchedulerConfig({ ...base, timestep_spacing: 'linspace' }), 20);
    expect([lin[0], lin[1], lin.at(-2), lin.at(-1)]).toEqual([999, 946, 53, 0]);
    // linear betas: torch.linspace(1e-4, 0.02, 1000) endpoints
    const lb = torchLinspaceF32(1e-4, 0.02, 1000);
    expect(lb[0]).toBe(Math.fround(1e-4));
    expect(lb[999]).toBe(Math.fround(0.02));
    // DDIMScheduler() defaults: linear, set_alpha_to_one → final ᾱ = 1
    const d = new DDIMScheduler({});
    expect(d.finalAlphaCumprod).toBe(1);
    expect(d.config.clipSample).toBe(true);
    expect(() => parseSchedulerConfig({ prediction_type: 'flow' })).toThrow(/prediction_type/);
  });
});

/** diffusers' DDIMScheduler.step in float64 (the formula as written, from the float32 alphas). */
function stepRef(
  s: DDIMScheduler, out: ArrayLike<number>, x: ArrayLike<number>, t: number, eta: number, z: ArrayLike<number> | null,
): { prev: Float64Array; x0: Float64Array; mu: Float64Array; std: number } {
  const prevT = s.prevTimestep(t);
  const a = s.alphasCumprod[t];
  const ap = prevT >= 0 ? s.alphasCumprod[prevT] : s.finalAlphaCumprod;
  const b = 1 - a;
  const n = x.length;
  const x0 = new Float64Array(n);
  const eps = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (s.config.predictionType === 'epsilon') {
      x0[i] = (x[i] - Math.sqrt(b) * out[i]) / Math.sqrt(a);
      eps[i] = out[i];
    } else if (s.config.predictionType === 'v_prediction') {
      x0[i] = Math.sqrt(a) * x[i] - Math.sqrt(b) * out[i];
      eps[i] = Math.sqrt(a) * out[i] + Math.sqrt(b) * x[i];
    } else {
      x0[i] = out[i];
      eps[i] = (x[i] - Math.sqrt(a) * x0[i]) / Math.sqrt(b);
    }
    if (s.config.clipSample) x0[i] = Math.min(Math.max(x0[i], -s.config.clipSampleRange), s.config.clipSampleRange);
  }
  const variance = ((1 - ap) / (1 - a)) * (1 - a / ap);
  const std = eta * Math.sqrt(variance);
  const mu = new Float64Array(n);
  const prev = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    mu[i] = Math.sqrt(ap) * x0[i] + Math.sqrt(1 - ap - std * std) * eps[i];
    prev[i] = eta > 0 && z ? mu[i] + std * z[i] : mu[i];
  }
  return { prev, x0, mu, std };
}

describe('DDIM step (GPU) vs golden diffusers outputs', () => {
  it('every step case: prev_sample and pred_original_sample relL2 < 1e-5', async () => {
    const mo = get(inputs, 'step.model_output');
    const smp = get(inputs, 'step.sample');
    const vn = get(inputs, 'step.variance_noise');
    const lines: string[] = [];
    for (const c of cases.step_cases) {
      const s = DDIMScheduler.fromConfig(config);
      s.setTimesteps(c.num_inference_steps);
      const o = tensorOf(mo), x = tensorOf(smp), z = tensorOf(vn);
      const r = s.step(o, c.timestep, x, { eta: c.eta, varianceNoise: z });
      const prev = await r.prevSample.toArray();
      const x0 = await r.predOriginalSample.toArray();
      const ePrev = relL2(prev, get(outputs, `step.${c.case}.prev_sample`).data);
      const eX0 = relL2(x0, get(outputs, `step.${c.case}.pred_original_sample`).data);
      lines.push(`case ${c.case} (n=${c.num_inference_steps}, t=${c.timestep}, eta=${c.eta}): prev ${ePrev.toExponential(2)}, x0 ${eX0.toExponential(2)}`);
      expect(ePrev).toBeLessThan(1e-5);
      expect(eX0).toBeLessThan(1e-5);
      for (const t of [o, x, z, r.prevSample, r.predOriginalSample]) t.dispose();
    }
    console.log(lines.join('\n'));
  });

  it('η > 0 without a generator is reproducible: fresh schedulers draw the same noise (seed 0), successive steps new noise', async () => {
    const gen = new Generator(11);
    const shape = [2, 4, 3, 5];
    const n = 2 * 4 * 3 * 5;
    const o = Tensor.fromArray(f32round(randn64(gen, n)), shape);
    const x = Tensor.fromArray(f32round(randn64(gen, n)), shape);
    const stepOnce = async (s: DDIMScheduler, opts: { generator?: Generator } = {}) => {
      const r = s.step(o, s.timesteps[3], x, { eta: 1, ...opts });
      const v = await r.prevSample.toArray();
      r.prevSample.dispose();
      r.predOriginalSample.dispose();
      return v;
    };
    const fresh = () => {
      const s = DDIMScheduler.fromConfig(config);
      s.setTimesteps(10);
      return s;
    };
    const a = fresh();
    const first = await stepOnce(a);
    const second = await stepOnce(a);
    expect(Array.from(await stepOnce(fresh()))).toEqual(Array.from(first)); // a new run repeats the first
    expect(relL2(second, first)).toBeGreaterThan(1e-2); // the stream moves on within a run
    expect(Array.from(await stepOnce(fresh(), { generator: new Generator(0) }))).toEqual(Array.from(first)); // = an explicit seed-0 generator
    expect(relL2(await stepOnce(fresh(), { generator: new Generator(1) }), first)).toBeGreaterThan(1e-2);
    o.dispose();
    x.dispose();
  });

  it('add_noise with one timestep per batch item: relL2 < 1e-5', async () => {
    const s = DDIMScheduler.fromConfig(config);
    const ts = Array.from(get(inputs, 'add_noise.timesteps').data);
    const y = s.addNoise(tensorOf(get(inputs, 'add_noise.original_samples')), tensorOf(get(inputs, 'add_noise.noise')), ts);
    const e = relL2(await y.toArray(), get(outputs, 'add_noise.noisy_samples').data);
    console.log(`add_noise relL2 ${e.toExponential(2)} (timesteps ${ts.join(', ')})`);
    expect(e).toBeLessThan(1e-5);
  });

  it('batched timesteps, v_prediction, sample and clip_sample agree with the float64 diffusers formula (relL2 < 1e-5)', async () => {
    const gen = new Generator(11);
    const shape = [3, 4, 5, 7]; // ragged
    const n = 3 * 4 * 5 * 7;
    const out = f32round(randn64(gen, n));
    const x = f32round(randn64(gen, n, 1.3));
    const z = f32round(randn64(gen, n));
    const variants: Record<string, unknown>[] = [
      { prediction_type: 'v_prediction' },
      { prediction_type: 'sample' },
      { clip_sample: true, clip_sample_range: 1.5 },
      { prediction_type: 'v_prediction', timestep_spacing: 'trailing' },
    ];
    for (const v of variants) {
      const s = DDIMScheduler.fromConfig({ ...config, ...v });
      const grid = s.setTimesteps(10);
      const ts = [grid[0], grid[4], grid[9]]; // includes the last step (prev_t < 0)
      for (const eta of [0, 1]) {
        const r = s.step(Tensor.fromArray(out, shape), ts, Tensor.fromArray(x, shape), { eta, varianceNoise: Tensor.fromArray(z, shape) });
        const prev = await r.prevSample.toArray();
        const x0 = await r.predOriginalSample.toArray();
        const D = n / 3;
        const refPrev = new Float64Array(n);
        const refX0 = new Float64Array(n);
        for (let b = 0; b < 3; b++) {
          const sl = (a: Float64Array) => a.subarray(b * D, (b + 1) * D);
          const ref = stepRef(s, sl(out), sl(x), ts[b], eta, sl(z));
          refPrev.set(ref.prev, b * D);
          refX0.set(ref.x0, b * D);
        }
        const ep = relL2(prev, refPrev);
        const ex = relL2(x0, refX0);
        expect(ep, `${JSON.stringify(v)} eta=${eta} prev`).toBeLessThan(1e-5);
        expect(ex, `${JSON.stringify(v)} eta=${eta} x0`).toBeLessThan(1e-5);
      }
    }
  });
});

describe('DDIM log-probability', () => {
  it('ddimLogProb matches a float64 CPU reference at a ragged shape (relL2 < 1e-5) and its formula', async () => {
    const gen = new Generator(3);
    const shape = [3, 3, 5, 7];
    const n = 3 * 3 * 5 * 7;
    const mu = f32round(randn64(gen, n));
    const sig = [0.644, 0.0206, 0.3];
    const xp = new Float64Array(n);
    const D = n / 3;
    for (let i = 0; i < n; i++) xp[i] = mu[i] + sig[Math.floor(i / D)] * gen.normal();
    const xq = f32round(xp);
    const lp = ddimLogProb(Tensor.fromArray(xq, shape), Tensor.fromArray(mu, shape), sig);
    expect(lp.shape).toEqual([3]);
    const got = await lp.toArray();
    const ref = ddimLogProbRef(xq, mu, sig);
    const e = relL2(got, ref);
    console.log(`log-prob vs float64: relL2 ${e.toExponential(2)}; values ${Array.from(got, (v) => v.toFixed(5)).join(', ')}`);
    expect(e).toBeLessThan(1e-5);
    // at x' = μ the density is −log σ − log √(2π)
    const at = await ddimLogProb(Tensor.fromArray(mu, shape), Tensor.fromArray(mu, shape), sig).toArray();
    for (let b = 0; b < 3; b++) expect(Math.abs(at[b] - (-Math.log(sig[b]) - LOG_SQRT_2PI))).toBeLessThan(1e-5);
    expect(() => ddimLogProb(Tensor.fromArray(mu, shape), Tensor.fromArray(mu, shape), [1, 0, 1])).toThrow(/σ_t must be > 0/);
  });

  it('∂ Σ log π / ∂ model output equals the analytic (x′ − μ)·c_t/(σ²·D) (x′ detached)', async () => {
    const s = DDIMScheduler.fromConfig(config);
    s.setTimesteps(20);
    const gen = new Generator(9);
    const shape = [2, 4, 3, 5];
    const n = 120;
    const D = 60;
    const ts = [501, 51];
    const out = f32round(randn64(gen, n));
    const x = f32round(randn64(gen, n));
    const prevObs = f32round(randn64(gen, n, 0.8));
    const eps = requireGrad(Tensor.fromArray(out, shape));
    const r = s.stepWithLogProb(eps, ts, Tensor.fromArray(x, shape), { eta: 1, prevSample: Tensor.fromArray(prevObs, shape) });
    const mu = await r.mean.toArray();
    const loss = sumAll(r.logProb);
    backward(loss);
    const g = await eps.grad!.toArray();
    const ref = new Float64Array(n);
    for (let b = 0; b < 2; b++) {
      const sc = s.stepScalars(ts[b], 1);
      for (let i = b * D; i < (b + 1) * D; i++) ref[i] = ((prevObs[i] - mu[i]) * sc.meanOut) / (sc.stdDevT ** 2 * D);
    }
    const e = relL2(g, ref);
    console.log(`log-prob gradient vs analytic: relL2 ${e.toExponential(2)}`);
    expect(e).toBeLessThan(1e-5);
  });

  it('reproduces the LPO golden DDIM part (σ_t, x̂0, μ, K candidates, logp.ref/policy/old) from eps.cfg: relL2 < 1e-4', async () => {
    const lin = readSafetensors(join(GOLDEN, 'lpo/inputs.safetensors'));
    const lout = readSafetensors(join(GOLDEN, 'lpo/outputs.safetensors'));
    const lcases = JSON.parse(readFileSync(join(GOLDEN, 'lpo/cases.json'), 'utf8'));
    const s = DDIMScheduler.fromConfig(config);
    s.setTimesteps(lcases.num_inference_steps);
    const ts = Array.from(get(lin, 'timesteps').data);
    const lat = get(lin, 'latents');
    const epsCfg = get(lout, 'eps.cfg');
    const zAll = get(lin, 'variance_noise'); // [K,B,4,H,W]
    const K = zAll.shape[0];
    const B = lat.shape[0];
    const per = lat.data.length;
    const x = tensorOf(lat);
    const r = s.step(tensorOf(epsCfg), ts, x, { eta: lcases.eta, varianceNoise: Tensor.fromArray(zAll.data.subarray(0, per), lat.shape) });
    const st = s.batchStepScalars(ts, ts.length, lcases.eta);
    const errs: Record<string, number> = {};
    errs.std_dev_t = relL2(st.map((q) => q.stdDevT), get(lout, 'std_dev_t').data);
    errs.pred_original_sample = relL2(await r.predOriginalSample.toArray(), get(lout, 'pred_original_sample').data);
    // candidates and log-probs
    const cand = new Float64Array(K * per);
    const logp: Record<string, Float64Array> = { ref: new Float64Array(K * B), policy: new Float64Array(K * B), old: new Float64Array(K * B) };
    let muArr: Float32Array | null = null;
    const deltas: Record<string, StTensor | null> = { ref: null, policy: get(lin, 'policy.eps_delta'), old: get(lin, 'old.eps_delta') };
    for (let k = 0; k < K; k++) {
      const z = Tensor.fromArray(zAll.data.subarray(k * per, (k + 1) * per), lat.shape);
      const c = s.step(tensorOf(epsCfg), ts, x, { eta: lcases.eta, varianceNoise: z });
      const ca = await c.prevSample.toArray();
      cand.set(ca, k * per);
      for (const who of ['ref', 'policy', 'old']) {
        const d = deltas[who];
        const e = d ? Float64Array.from(epsCfg.data, (v, i) => Math.fround(v + d.data[i])) : epsCfg.data;
        const w = s.stepWithLogProb(Tensor.fromArray(e, lat.shape), ts, x, { eta: lcases.eta, prevSample: c.prevSample });
        if (who === 'ref' && k === 0) muArr = await w.mean.toArray();
        if (who === 'policy' && k === 0) errs['policy.prev_sample_mean'] = relL2(await w.mean.toArray(), get(lout, 'policy.prev_sample_mean').data);
        logp[who].set(await w.logProb.toArray(), k * B);
      }
    }
    errs.prev_sample_mean = relL2(muArr!, get(lout, 'prev_sample_mean').data);
    errs.candidates = relL2(cand, get(lout, 'candidates').data);
    for (const who of ['ref', 'policy', 'old']) errs[`logp.${who}`] = relL2(logp[who], get(lout, `logp.${who}`).data);
    console.log(Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', '));
    for (const [k, v] of Object.entries(errs)) expect(v, k).toBeLessThan(1e-4);
  });
});
