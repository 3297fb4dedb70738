// UNet2DConditionModel vs the golden diffusers 0.27.2 outputs (tiny SD1.5-layout U-Net, every parameter random).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2 } from './helpers.js';
import { gpu } from '../src/gpu/runtime.js';
import { Tensor } from '../src/tensor/tensor.js';
import { concat } from '../src/tensor/ops/layout.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { StateDictError } from '../src/nn/module.js';
import { backward, currentTape, noGrad } from '../src/autograd/tape.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { Generator } from '../src/tensor/random.js';
import { mul } from '../src/tensor/ops/elementwise.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { injectLoRA } from '../src/nn/linear.js';
import type { WeightsReader } from '../src/io/weights.js';
import '../src/io/pretrained.js'; // links the models' fromPretrained to io (the package entry does this)
import { UNet2DConditionModel, parseUNetConfig, stageEndIndices, timestepEmbedding, SD15_UNET_CONFIG } from '../src/nn/unet.js';

const GOLDEN = ['test/fixtures/golden/unet', '/work/shared/golden/unet'].find((d) => fs.existsSync(path.join(d, 'outputs.safetensors')))!;
const config = JSON.parse(fs.readFileSync(path.join(GOLDEN, 'config.json'), 'utf8'));
const TOL = 1e-4;

let weights: SafetensorsFile;
let inputs: SafetensorsFile;
let outputs: SafetensorsFile;
let skips: SafetensorsFile;
let unet: UNet2DConditionModel;
const figures: Record<string, number> = {};

beforeAll(async () => {
  await setupGpu();
  weights = SafetensorsFile.openSync(path.join(GOLDEN, 'weights.safetensors'));
  inputs = SafetensorsFile.openSync(path.join(GOLDEN, 'inputs.safetensors'));
  outputs = SafetensorsFile.openSync(path.join(GOLDEN, 'outputs.safetensors'));
  skips = SafetensorsFile.openSync(path.join(GOLDEN, 'down_block_res_samples.safetensors'));
  unet = new UNet2DConditionModel(config);
  await unet.loadStateDict(weights);
});

afterAll(() => {
  if (Object.keys(figures).length) console.log(`U-Net relL2 vs golden:\n${Object.entries(figures).map(([k, v]) => `  ${k.padEnd(34)} ${v.toExponential(2)}`).join('\n')}`);
  unet?.dispose();
  for (const f of [weights, inputs, outputs, skips]) f?.closeSync();
});

function input(f: SafetensorsFile, key: string): Tensor {
  return Tensor.fromArray(f.readF32Sync(key), f.info(key).shape);
}

async function compare(name: string, t: Tensor, ref: SafetensorsFile, key: string): Promise<number> {
  expect([...t.shape]).toEqual([...ref.info(key).shape]);
  const e = relL2(await t.toArray(), ref.readF32Sync(key));
  figures[name] = e;
  expect(e, name).toBeLessThan(TOL);
  return e;
}

/** A reader over `src` with one key dropped, renamed or reshaped (for the error tests). */
function tamper(src: SafetensorsFile, edit: { drop?: string; rename?: [string, string]; shape?: [string, number[]] }): WeightsReader {
  const keys = src.keys().filter((k) => k !== edit.drop).map((k) => (edit.rename && k === edit.rename[0] ? edit.rename[1] : k));
  const back = (k: string) => (edit.rename && k === edit.rename[1] ? edit.rename[0] : k);
  return {
    path: 'tampered',
    metadata: {},
    keys: () => keys,
    has: (k: string) => keys.includes(k),
    info: (k: string) => {
      const i = src.info(back(k));
      return edit.shape && k === edit.shape[0] ? { ...i, shape: edit.shape[1] } : i;
    },
    readF32: (k: string) => src.readF32(back(k)),
    readInt32: (k: string) => src.readInt32(back(k)),
    readTensor: (k: string) => src.readTensor(back(k)),
    close: async () => {},
  };
}

describe('UNet2DConditionModel', () => {
  it('parses the config (attention_head_dim = number of heads, per-block lists)', () => {
    const c = parseUNetConfig(config);
    expect(c.numAttentionHeads).toEqual([4, 4]);
    expect(c.layersPerBlock).toEqual([1, 1]);
    expect(c.timeEmbedDim).toBe(128);
    const sd = parseUNetConfig(SD15_UNET_CONFIG);
    expect(sd.numAttentionHeads).toEqual([8, 8, 8, 8]);
    expect(stageEndIndices(sd.layersPerBlock)).toEqual([2, 5, 8, 11]);
    expect(stageEndIndices(c.layersPerBlock)).toEqual([1, 3]);
    const sd2 = parseUNetConfig({ ...SD15_UNET_CONFIG, attention_head_dim: [5, 10, 20, 20], use_linear_projection: true, cross_attention_dim: 1024 });
    expect(sd2.numAttentionHeads).toEqual([5, 10, 20, 20]);
    expect(() => parseUNetConfig({ ...config, down_block_types: ['CrossAttnDownBlock2D', 'AttnDownBlock2D'] })).toThrow(/AttnDownBlock2D/);
  });

  it('has exactly the golden checkpoint keys and shapes', () => {
    const r = unet.checkStateDict(weights);
    expect(r).toEqual({ missing: [], unexpected: [], wrongShape: [], ignored: [] });
    expect(unet.stateDict().size).toBe(208);
    expect(unet.numParameters()).toBe(542116);
  });

  it('SD2-style use_linear_projection makes proj_in/proj_out Linear', () => {
    const m = new UNet2DConditionModel({ ...config, use_linear_projection: true, attention_head_dim: [2, 4] });
    const sd = m.stateDict();
    expect([...sd.get('down_blocks.0.attentions.0.proj_in.weight')!.shape]).toEqual([32, 32]);
    expect([...sd.get('up_blocks.1.attentions.1.proj_out.weight')!.shape]).toEqual([32, 32]);
    expect(m.stateDict().size).toBe(208);
    m.dispose();
  });

  it('use_linear_projection runs proj_in/proj_out as Linear: same output as the 1x1 convs with the same weights', async () => {
    const m = new UNet2DConditionModel({ ...config, use_linear_projection: true });
    const sd = new Map<string, Float32Array>();
    for (const k of weights.keys()) sd.set(k, weights.readF32Sync(k)); // Float32Array sources are checked by element count
    await m.loadStateDict(sd);
    m.freeze();
    const x = input(inputs, 'run1.sample');
    const ctx = input(inputs, 'run1.encoder_hidden_states');
    const y = m.forward(x, [981], ctx).sample;
    const e = relL2(await y.toArray(), outputs.readF32Sync('run1.noise_pred'));
    figures['run1.noise_pred (linear projection)'] = e;
    expect(e).toBeLessThan(TOL);
    for (const t of [x, ctx, y]) t.dispose();
    m.dispose();
  });

  it('time_proj on the host matches diffusers (float32 arguments, float64 sin/cos)', () => {
    for (const run of ['run1', 'run2']) {
      const t = inputs.readInt32Sync(`${run}.timestep`)[0];
      const e = relL2(timestepEmbedding([t], 32, { flipSinToCos: true, freqShift: 0 }), outputs.readF32Sync(`${run}.debug.time_proj`));
      expect(e).toBeLessThan(1e-6);
    }
  });

  for (const run of ['run1', 'run2']) {
    it(`${run}: noise_pred, every block output, the skip tuple and the debug taps match`, async () => {
      const x = input(inputs, `${run}.sample`);
      const ctx = input(inputs, `${run}.encoder_hidden_states`);
      const t = [...inputs.readInt32Sync(`${run}.timestep`)];
      const out = unet.forward(x, t, ctx, { returnFeatures: true });
      await compare(`${run}.noise_pred`, out.sample, outputs, `${run}.noise_pred`);
      for (let i = 0; i < out.downBlocks!.length; i++) await compare(`${run}.down_blocks.${i}`, out.downBlocks![i], outputs, `${run}.down_blocks.${i}`);
      await compare(`${run}.mid_block`, out.mid!, outputs, `${run}.mid_block`);
      for (let i = 0; i < out.upBlocks!.length; i++) await compare(`${run}.up_blocks.${i}`, out.upBlocks![i], outputs, `${run}.up_blocks.${i}`);
      for (const k of ['conv_in', 'time_proj', 'time_embedding'] as const) await compare(`${run}.debug.${k}`, out.debug![k], outputs, `${run}.debug.${k}`);
      expect(out.downBlockResSamples!.length).toBe(4);
      for (let i = 0; i < out.downBlockResSamples!.length; i++) {
        await compare(`${run}.down_block_res_samples.${i}`, out.downBlockResSamples![i], skips, `${run}.down_block_res_samples.${i}`);
      }
      for (const ts of [x, ctx, out.sample, out.mid!, ...out.downBlocks!, ...out.upBlocks!, ...out.downBlockResSamples!, ...Object.values(out.debug!)]) ts.dispose();
    });
  }

  it('stopAfterMid (batch 2, one timestep per item) gives the mid output and skip tuple of each run', async () => {
    const xs = ['run1', 'run2'].map((r) => input(inputs, `${r}.sample`));
    const cs = ['run1', 'run2'].map((r) => input(inputs, `${r}.encoder_hidden_states`));
    const x = concat(xs, 0);
    const ctx = concat(cs, 0);
    const t = ['run1', 'run2'].map((r) => inputs.readInt32Sync(`${r}.timestep`)[0]);
    const out = unet.forward(x, t, ctx, { stopAfterMid: true });
    expect('sample' in out).toBe(false);
    const mid = await out.mid.toArray();
    const n = mid.length / 2;
    for (const [b, run] of ['run1', 'run2'].entries()) {
      const e = relL2(mid.subarray(b * n, (b + 1) * n), outputs.readF32Sync(`${run}.mid_block`));
      figures[`batch2.${run}.mid_block`] = e;
      expect(e).toBeLessThan(TOL);
      for (const i of unet.stageEndIndices) {
        const s = await out.downBlockResSamples[i].toArray();
        const m = s.length / 2;
        const es = relL2(s.subarray(b * m, (b + 1) * m), skips.readF32Sync(`${run}.down_block_res_samples.${i}`));
        figures[`batch2.${run}.down_block_res_samples.${i}`] = es;
        expect(es).toBeLessThan(TOL);
      }
    }
    for (const ts of [...xs, ...cs, x, ctx, out.mid, ...out.downBlocks, ...out.downBlockResSamples]) ts.dispose();
  });

  it('a forward frees its intermediates (inference, and a recorded forward once the tape is cleared)', async () => {
    const x = input(inputs, 'run1.sample');
    const ctx = input(inputs, 'run1.encoder_hidden_states');
    const warm = unet.forward(x, [981], ctx);
    warm.sample.dispose();
    currentTape().clear();
    const before = gpu().pool.stats().inUseBytes;
    const out = unet.forward(x, [981], ctx);
    out.sample.dispose();
    const mid = unet.forward(x, [981], ctx, { stopAfterMid: true, returnFeatures: true });
    for (const t of [mid.mid, ...mid.downBlocks, ...mid.downBlockResSamples, ...Object.values(mid.debug!)]) t.dispose();
    // The parameters are trainable leaves here, so the ops recorded onto the tape, which holds saved tensors.
    currentTape().clear();
    expect(gpu().pool.stats().inUseBytes).toBe(before);
    unet.freeze();
    noGrad(() => unet.forward(x, [981], ctx).sample.dispose());
    expect(currentTape().nodes.length).toBe(0);
    expect(gpu().pool.stats().inUseBytes).toBe(before);
    unet.unfreeze();
    x.dispose();
    ctx.dispose();
  });

  it('loading names a missing key, an unexpected key and a wrong-shaped tensor', async () => {
    const m = new UNet2DConditionModel(config);
    const missing = 'mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight';
    await expect(m.loadStateDict(tamper(weights, { drop: missing }))).rejects.toThrow(new RegExp(`missing keys: .*${missing.replace(/\./g, '\\.')}`));
    await expect(m.loadStateDict(tamper(weights, { rename: ['conv_in.bias', 'conv_in.b'] }))).rejects.toThrow(/unexpected keys: conv_in\.b\b/);
    const wrong = 'up_blocks.1.resnets.0.conv1.weight';
    const err = await m.loadStateDict(tamper(weights, { shape: [wrong, [32, 81, 3, 3]] })).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(StateDictError);
    expect(String((err as Error).message)).toContain(`${wrong} [32,81,3,3] (expected [32,80,3,3])`);
    m.dispose();
  });

  it('fromPretrained reads a diffusers folder (config.json + weights)', async () => {
    const m = await UNet2DConditionModel.fromPretrained(GOLDEN);
    const a = await m.stateDict().get('up_blocks.1.attentions.1.proj_out.weight')!.toArray();
    expect(relL2(a, weights.readF32Sync('up_blocks.1.attentions.1.proj_out.weight'))).toBe(0);
    m.dispose();
  });
});

describe('UNet2DConditionModel backward', () => {
  it('gradients w.r.t. the latent and the context pass gradcheck (frozen weights)', async () => {
    unet.freeze();
    const x = input(inputs, 'run1.sample');
    const ctx = input(inputs, 'run1.encoder_hidden_states');
    const r = await gradcheck((xx, cc) => unet.forward(xx, [981], cc).sample, [x, ctx], { maxElements: 8, eps: 1e-2, atol: 5e-3, rtol: 3e-2 });
    figures['gradcheck worst ratio (≤ 1 passes)'] = r.worstRatio;
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
    x.dispose();
    ctx.dispose();
    unet.unfreeze();
  });

  it('LoRA on the attention projections: only the factors get gradients', async () => {
    const m = new UNet2DConditionModel(config);
    await m.loadStateDict(weights);
    const names = injectLoRA(m, /attn[12]\.(to_q|to_k|to_v|to_out\.0)$/, { rank: 2, gen: new Generator(3) });
    expect(names.length).toBe(4 * 2 * 4); // 4 transformers (down 0, mid, up 1 ×2) × attn1/attn2 × q,k,v,out
    // lora_B starts at zero: the output is the base model's.
    const x = input(inputs, 'run1.sample');
    const ctx = input(inputs, 'run1.encoder_hidden_states');
    const y = m.forward(x, [981], ctx).sample;
    const e = relL2(await y.toArray(), outputs.readF32Sync('run1.noise_pred'));
    expect(e).toBeLessThan(TOL);
    const w = Tensor.randn(y.shape, new Generator(5));
    const p = mul(y, w);
    const loss = sumAll(p);
    backward(loss);
    const trainable = m.namedTrainableParameters();
    expect(trainable.length).toBe(2 * names.length);
    for (const [k, t] of trainable) {
      expect(k).toMatch(/lora_[AB]\.weight$/);
      const g = await t.grad!.toArray();
      expect(g.every(Number.isFinite)).toBe(true);
      if (k.endsWith('lora_B.weight')) expect(g.some((v) => v !== 0), k).toBe(true);
    }
    for (const [, t] of m.namedParameters()) if (!t.requiresGrad) expect(t.grad).toBeNull();

    // Gradient checkpointing: the same gradients, far fewer bytes saved on the tape.
    const ref = new Map<string, Float32Array>();
    for (const [k, t] of trainable) ref.set(k, await t.grad!.toArray());
    m.zeroGrad();
    const savedBytes = () => currentTape().nodes.reduce((a, n) => a + n.saved.reduce((b, t) => b + t.bytes, 0), 0);
    const y0 = m.forward(x, [981], ctx).sample;
    const plain = savedBytes();
    y0.dispose();
    currentTape().clear();
    m.enableGradientCheckpointing();
    expect(m.gradientCheckpointing).toBe(true);
    const y2 = m.forward(x, [981], ctx).sample;
    const ckBytes = savedBytes();
    expect(relL2(await y2.toArray(), outputs.readF32Sync('run1.noise_pred'))).toBeLessThan(TOL);
    const p2 = mul(y2, w);
    const loss2 = sumAll(p2);
    backward(loss2);
    let worst = 0;
    for (const [k, t] of trainable) if (k.endsWith('lora_B.weight')) worst = Math.max(worst, relL2(await t.grad!.toArray(), ref.get(k)!));
    figures['LoRA grads, checkpointed vs not'] = worst;
    expect(worst).toBeLessThan(1e-5);
    expect(ckBytes).toBeLessThan(plain / 2);
    for (const t of [x, ctx, y, w, p, loss, y2, p2, loss2]) t.dispose();
    m.dispose();
  });
});
