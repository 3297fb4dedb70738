// The Latent Reward Model on tiny configs: features and score against float64 recomputations, VFE, text
// deduplication, the truncated U-Net (no up-block kernel, no up-block parameter), the pair loss and its gradcheck.
import { beforeAll, describe, expect, it } from 'vitest';
import { gpu } from '../src/gpu/runtime.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward } from '../src/autograd/tape.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import type { Conv2d } from '../src/nn/layers.js';
import { linear } from '../src/tensor/ops/matmul.js';
import { pairAccuracy, pairLoss, pairWeights } from '../src/lrm/loss.js';
import { cosineScores } from '../src/lrm/score.js';
import { visualInDim } from '../src/lrm/config.js';
import type { LatentRewardModel, ScoreDetails } from '../src/lrm/model.js';
import { UNet2DConditionModel } from '../src/nn/unet.js';
import { relL2, setupGpu } from './helpers.js';
import { TINY_UNET, tinyLrm } from './lrm-tiny.js';

beforeAll(async () => {
  await setupGpu();
});

const N = 5;
const PROMPTS = ['a cat', 'a dog', 'a cat', '', 'a dog'];
const TS = [1, 951, 501, 51, 1];

function latents(seed = 7): Tensor {
  return Tensor.randn([N, 4, 8, 8], new Generator(seed));
}

async function host(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.toArray());
}

/** y = x Wᵀ in float64 ([R, I] · [O, I]ᵀ). */
function matmulT(x: Float64Array, w: Float64Array, rows: number, inF: number, outF: number): Float64Array {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) {
    let s = 0;
    for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
    y[r * outF + o] = s;
  }
  return y;
}

/** Mean over H·W of [B, C, H, W] in float64. */
function spatialMean64(x: Float64Array, shape: readonly number[]): Float64Array {
  const [B, C, H, W] = shape;
  const out = new Float64Array(B * C);
  for (let p = 0; p < B * C; p++) {
    let s = 0;
    for (let i = 0; i < H * W; i++) s += x[p * H * W + i];
    out[p] = s / (H * W);
  }
  return out;
}

function dispose(d: ScoreDetails): void {
  for (const t of new Set(Object.values(d).flat())) (t as Tensor | null)?.dispose();
}

/** Records the batch size of every U-Net and text-encoder call. */
function spy(model: LatentRewardModel): { unet: number[]; text: number[]; restore(): void } {
  const rec = { unet: [] as number[], text: [] as number[], restore: () => {} };
  const u = model.unet.forward.bind(model.unet);
  const t = model.textEncoder.forward.bind(model.textEncoder);
  model.unet.forward = ((x: Tensor, ...rest: unknown[]) => { rec.unet.push(x.shape[0]); return (u as (...a: unknown[]) => unknown)(x, ...rest); }) as typeof u;
  model.textEncoder.forward = ((ids: number[][], ...rest: unknown[]) => { rec.text.push(ids.length); return (t as (...a: unknown[]) => unknown)(ids, ...rest); }) as typeof t;
  rec.restore = () => {
    model.unet.forward = u;
    model.textEncoder.forward = t;
  };
  return rec;
}

describe('LatentRewardModel', () => {
  it('score = exp(τ)·cos(T, V), and every feature matches a float64 recomputation from the captured U-Net and text outputs', async () => {
    const model = tinyLrm(3);
    const x = latents();
    const calls = spy(model);
    const text = model.encodeText(PROMPTS);
    const d = model.scoreDetails(x, TS, text);
    calls.restore();
    // One text-encoder batch: the 3 distinct prompts and the null prompt; one U-Net batch: text and null halves.
    expect(text.prompts).toEqual(['a cat', 'a dog', '']);
    expect(Array.from(text.index)).toEqual([0, 1, 0, 2, 1]);
    expect(calls.text).toEqual([4]);
    expect(calls.unet).toEqual([2 * N]);

    const Dp = model.config.projectionDim;
    const tau = (await model.logitScale.toArray())[0];
    const T = await host(d.T);
    const V = await host(d.V);
    const s = await host(d.scores);
    const ref = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      let dot = 0, nt = 0, nv = 0;
      for (let j = 0; j < Dp; j++) {
        dot += T[i * Dp + j] * V[i * Dp + j];
        nt += T[i * Dp + j] ** 2;
        nv += V[i * Dp + j] ** 2;
      }
      ref[i] = (Math.exp(tau) * dot) / Math.sqrt(nt * nv);
    }
    expect(relL2(s, ref)).toBeLessThan(1e-6);
    const direct = model.score(x, TS, PROMPTS);
    expect(relL2(await host(direct), ref)).toBeLessThan(1e-6);

    // T = text_projection(pooler_output of each latent's prompt).
    const Dt = 16;
    const pooled = await host(text.pooled);
    const Wt = await host(model.textProjection.weight);
    const Tref = matmulT(pooled, Wt, text.prompts.length, Dt, Dp);
    const Trows = new Float64Array(N * Dp);
    PROMPTS.forEach((_, i) => Trows.set(Tref.subarray(text.index[i] * Dp, (text.index[i] + 1) * Dp), i * Dp));
    expect(relL2(T, Trows)).toBeLessThan(1e-5);

    // The U-Net run separately with each latent's text context, and with the null context.
    const ctx = await host(text.context);
    const L = 77;
    const gather = (rows: number[]) => {
      const out = new Float32Array(rows.length * L * Dt);
      rows.forEach((r, i) => out.set(Float32Array.from(ctx.subarray(r * L * Dt, (r + 1) * L * Dt)), i * L * Dt));
      return Tensor.fromArray(out, [rows.length, L, Dt]);
    };
    const ctxText = gather(Array.from(text.index));
    const ctxNull = gather(new Array(N).fill(text.nullRow));
    const oT = model.unet.forward(x, TS, ctxText, { stopAfterMid: true });
    const oN = model.unet.forward(x, TS, ctxNull, { stopAfterMid: true });
    const parts: Float64Array[] = [];
    for (const [k, i] of model.config.featureIndices.entries()) {
      const p = spatialMean64(await host(oT.downBlockResSamples[i]), oT.downBlockResSamples[i].shape);
      expect(relL2(await host(d.pooled[k]), p)).toBeLessThan(1e-6);
      parts.push(p);
    }
    const midT = spatialMean64(await host(oT.mid), oT.mid.shape);
    const midN = spatialMean64(await host(oN.mid), oN.mid.shape);
    expect(relL2(await host(d.midText), midT)).toBeLessThan(1e-6);
    expect(relL2(await host(d.midNull!), midN)).toBeLessThan(1e-6);
    const w = model.config.vfeWeight;
    const vfe = midT.map((v, j) => midN[j] + w * (v - midN[j]));
    expect(relL2(await host(d.midVfe), vfe)).toBeLessThan(1e-5);
    // concat = [pooled stage ends..., Ṽ_mid] per row; V = concat W_vᵀ.
    const Dv = visualInDim(model.unet.config, model.config.featureIndices);
    const cat = new Float64Array(N * Dv);
    for (let r = 0; r < N; r++) {
      let o = 0;
      for (const p of [...parts, vfe]) {
        const c = p.length / N;
        cat.set(p.subarray(r * c, (r + 1) * c), r * Dv + o);
        o += c;
      }
    }
    expect(relL2(await host(d.concat), cat)).toBeLessThan(1e-5);
    expect(relL2(V, matmulT(cat, await host(model.visualProjection.weight), N, Dv, Dp))).toBeLessThan(1e-5);
    for (const t of [direct, ctxText, ctxNull, oT.mid, oN.mid, ...oT.downBlockResSamples, ...oN.downBlockResSamples, ...oT.downBlocks, ...oN.downBlocks]) t.dispose();
    dispose(d);
    text.dispose();
    x.dispose();
    model.dispose();
  });

  it('w = 1: no null prompt and no null pass; the mid feature is the text pass (= the w = 7.5 model\'s text half)', async () => {
    const m75 = tinyLrm(4);
    const m1 = tinyLrm(4, { vfeWeight: 1 });
    const x = latents(8);
    const calls = spy(m1);
    const t1 = m1.encodeText(PROMPTS);
    const d1 = m1.scoreDetails(x, TS, t1);
    calls.restore();
    expect(calls.unet).toEqual([N]);
    expect(calls.text).toEqual([3]);
    expect(t1.nullRow).toBe(-1);
    expect(d1.midNull).toBeNull();
    const t75 = m75.encodeText(PROMPTS);
    const d75 = m75.scoreDetails(x, TS, t75);
    expect(relL2(await host(d1.midVfe), await host(d75.midText))).toBeLessThan(1e-6);
    expect(relL2(await host(d1.midVfe), await host(d1.midText))).toBe(0);
    // The VFE feature differs from the text-only one (the null pass does something).
    expect(relL2(await host(d75.midVfe), await host(d75.midText))).toBeGreaterThan(1e-3);
    // Features encoded without the null prompt cannot feed VFE.
    expect(() => m75.scoreDetails(x, TS, t1)).toThrow(/null prompt/);
    for (const d of [d1, d75]) dispose(d);
    t1.dispose();
    t75.dispose();
    x.dispose();
    m1.dispose();
    m75.dispose();
  });

  it('a U-Net batch run in chunks (unetBatch) gives the same scores and gradients', async () => {
    const model = tinyLrm(6);
    const x = latents(9);
    const run = async (chunk: number) => {
      model.unetBatch = chunk;
      const s = model.score(x, TS, PROMPTS);
      const v = await s.toArray();
      backward(sumAll(s));
      const g = await model.unet.child<Conv2d>('conv_in').weight.grad!.toArray();
      const gt = await model.textProjection.weight.grad!.toArray();
      model.zeroGrad();
      s.dispose();
      return { v, g, gt };
    };
    const whole = await run(Infinity);
    const calls = spy(model);
    const chunked = await run(3);
    calls.restore();
    expect(calls.unet).toEqual([3, 3, 3, 1]);
    expect(relL2(chunked.v, whole.v)).toBeLessThan(1e-6);
    expect(relL2(chunked.g, whole.g)).toBeLessThan(1e-5);
    expect(relL2(chunked.gt, whole.gt)).toBeLessThan(1e-5);
    x.dispose();
    model.dispose();
  });

  it('the up path is not built (no up_blocks/conv_norm_out/conv_out parameter) and no up-block kernel runs while scoring', async () => {
    const model = tinyLrm(5);
    const names = model.namedParameters().map(([k]) => k);
    expect(names.filter((k) => /^unet\.(up_blocks|conv_norm_out|conv_out)\./.test(k))).toEqual([]);
    expect(names.some((k) => k.startsWith('unet.mid_block.'))).toBe(true);
    const full = new UNet2DConditionModel(TINY_UNET, { gen: new Generator(5) });
    const upParams = full.namedParameters().filter(([k]) => /^(up_blocks|conv_norm_out|conv_out)\./.test(k)).reduce((s, [, p]) => s + p.size, 0);
    expect(model.unet.numParameters()).toBe(full.numParameters() - upParams);
    expect(() => model.unet.forward(latents(), 1, Tensor.randn([N, 77, 16], new Generator(1)))).toThrow(/stopAfterMid/);

    const g = gpu();
    const orig = g.dispatch.bind(g);
    const seen: string[] = [];
    g.dispatch = (d) => { seen.push(d.kernel.name); orig(d); };
    const x = latents();
    let s: Tensor;
    let ref: ReturnType<UNet2DConditionModel['forward']>;
    const ctx = Tensor.randn([N, 77, 16], new Generator(2));
    try {
      s = model.score(x, TS, PROMPTS);
      await s.toArray();
      const lrmKernels = [...seen];
      seen.length = 0;
      ref = full.forward(x, TS, ctx);
      await ref.sample.toArray();
      // The full U-Net's up path upsamples (pool.up_*); the LRM never does.
      expect(seen.some((k) => k.startsWith('pool.up'))).toBe(true);
      expect(lrmKernels.some((k) => k.startsWith('pool.up'))).toBe(false);
      expect(lrmKernels.length).toBeGreaterThan(20);
    } finally {
      g.dispatch = orig;
    }
    s.dispose();
    ref.sample.dispose();
    ctx.dispose();
    x.dispose();
    full.dispose();
    model.dispose();
  });
});

describe('pair loss', () => {
  /** LPO-SPEC §2.3 in float64. */
  function lossRef(s: ArrayLike<number>, l0: number[], l1: number[], w: number[]): { loss: number; perPair: number[] } {
    const P = l0.length;
    const perPair = l0.map((_, i) => {
      const a = s[i], b = s[P + i];
      const m = Math.max(a, b);
      const lse = m + Math.log(Math.exp(a - m) + Math.exp(b - m));
      return -l0[i] * (a - lse) - l1[i] * (b - lse) + (l0[i] === l1[i] ? Math.log(0.5) : 0);
    });
    return { loss: perPair.reduce((acc, v, i) => acc + w[i] * v, 0), perPair };
  }

  it('matches float64 with win-lose pairs, a tie and 1/n weights; a tie at equal scores costs 0', async () => {
    const P = 5;
    const gen = new Generator(11);
    const s = Float32Array.from({ length: 2 * P }, () => 4 * gen.normal());
    s[P + 2] = s[2]; // the tie pair at equal scores
    const l0 = [1, 0, 0.5, 1, 0];
    const l1 = [0, 1, 0.5, 0, 1];
    const w = pairWeights([2, 1, 3, 1, 4]);
    expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(w[1] / w[0]).toBeCloseTo(2, 12);
    const out = pairLoss(Tensor.fromArray(s, [2 * P]), { label0: l0, label1: l1, weights: w });
    const ref = lossRef(s, l0, l1, w);
    expect(relL2(await out.perPair.toArray(), ref.perPair)).toBeLessThan(1e-6);
    expect(Math.abs((await out.loss.item()) - ref.loss) / Math.abs(ref.loss)).toBeLessThan(1e-6);
    expect(Math.abs((await out.perPair.toArray())[2])).toBeLessThan(1e-6);
    const probs = await out.probs.toArray();
    expect(probs[0] + probs[1]).toBeCloseTo(1, 6);
    expect(() => pairLoss(Tensor.fromArray(s, [2 * P]), { label0: l0, label1: [0, 1, 0.4, 0, 1], weights: w })).toThrow(/labels/);
    expect(() => pairWeights([1, 0])).toThrow(/> 0/);
    for (const t of Object.values(out)) t.dispose();
  });

  it('accuracy: a win counts its label, a tie pair counts 0.5, equal scores count 0', () => {
    expect(pairAccuracy(2, 1, 1, 0)).toBe(1);
    expect(pairAccuracy(1, 2, 1, 0)).toBe(0);
    expect(pairAccuracy(1, 2, 0.5, 0.5)).toBe(0.5);
    expect(pairAccuracy(1, 1, 1, 0)).toBe(0);
  });

  it('passes gradcheck through text_projection, visual_projection and τ', async () => {
    const P = 3, Dt = 6, Dv = 9, Dp = 5;
    const gen = new Generator(12);
    const pooled = Tensor.randn([P, Dt], gen);
    const concat = Tensor.randn([2 * P, Dv], gen);
    const rows = Tensor.fromArray(Int32Array.from([0, 1, 2, 0, 1, 2]), [2 * P], 'i32');
    const labels = { label0: [1, 0, 0.5], label1: [0, 1, 0.5], weights: pairWeights([1, 2, 3]) };
    const { embedding } = await import('../src/tensor/ops/embedding.js');
    const fn = (Wt: Tensor, Wv: Tensor, tau: Tensor): Tensor => {
      const T = embedding(rows, linear(pooled, Wt));
      const V = linear(concat, Wv);
      const s = cosineScores(T, V, tau);
      const out = pairLoss(s.scores, labels);
      return out.loss;
    };
    const Wt = Tensor.randn([Dp, Dt], gen, 0.5);
    const Wv = Tensor.randn([Dp, Dv], gen, 0.5);
    const tau = Tensor.scalar(0.7);
    const r = await gradcheck(fn, [Wt, Wv, tau], { eps: 1e-2, atol: 2e-3, rtol: 2e-2 });
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
    for (const t of [pooled, concat, rows, Wt, Wv, tau]) t.dispose();
  });
});
