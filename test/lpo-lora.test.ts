// LoRA adapters for LPO on the golden tiny SD1.5-layout U-Net: PEFT "gaussian" init, merge = unmerged,
// the bypassed adapters are exactly the frozen base (before and after training steps), and LoRA files in
// diffusers' key format (the golden train/lora.safetensors: same keys and shapes; old spelling; errors).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relL2, setupGpu } from './helpers.js';
import { backward, noGrad } from '../src/autograd/tape.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import '../src/io/pretrained.js'; // links UNet2DConditionModel.fromPretrained to the loader
import { UNet2DConditionModel } from '../src/nn/unet.js';
import { LoRALinear } from '../src/nn/linear.js';
import { addLoRA, loraLayers, loraParameters, mergeLoRA, setLoRABypass, unmergeLoRA, withLoRABypassed } from '../src/nn/lora.js';
import { injectLoRAFromFile, loadLoRA, saveLoRA } from '../src/io/lora.js';
import { AdamW } from '../src/optim/adamw.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { mul } from '../src/tensor/ops/elementwise.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { ArgumentError, FileFormatError, LpoError } from '../src/errors.js';

const ROOT = resolve(__dirname, '..');
const GOLDEN = [join(ROOT, 'test/fixtures/golden'), resolve(ROOT, '../shared/golden')].find((d) => existsSync(join(d, 'train/lora.safetensors')))!;
const LORA_FILE = join(GOLDEN, 'train/lora.safetensors');
let dir: string;

const unet = () => UNet2DConditionModel.fromPretrained(join(GOLDEN, 'unet'));
const inputs = () => {
  const g = new Generator(3);
  return { x: Tensor.randn([2, 4, 8, 8], g), ctx: Tensor.randn([2, 77, 16], g) };
};
const run = (m: UNet2DConditionModel, x: Tensor, c: Tensor) => m.forward(x, [951, 51], c).sample;

beforeAll(async () => {
  await setupGpu();
  dir = mkdtempSync(join(tmpdir(), 'lpo-lora-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('addLoRA', () => {
  it("wraps to_q/to_k/to_v/to_out.0 of every attention with PEFT's gaussian init (A ~ N(0, std 1/r), B = 0) and freezes the rest", async () => {
    const m = await unet();
    const names = addLoRA(m, { rank: 4, gen: new Generator(7) });
    expect(names.length).toBe(32);
    expect(names.every((n) => /attn[12]\.(to_q|to_k|to_v|to_out\.0)$/.test(n))).toBe(true);
    const A = (await Promise.all(loraLayers(m).map(([, l]) => l.loraA.toArray()))).flatMap((a) => Array.from(a));
    const std = Math.sqrt(A.reduce((s, v) => s + v * v, 0) / A.length);
    console.log(`lora_A: ${A.length} values, std ${std.toFixed(4)} (PEFT gaussian: 1/r = 0.25)`);
    expect(Math.abs(std - 0.25)).toBeLessThan(0.0125);
    for (const [, l] of loraLayers(m)) expect((await l.loraB.toArray()).every((v) => v === 0)).toBe(true);
    expect(m.trainableParameters()).toEqual(loraParameters(m));
    expect(() => addLoRA(m, { rank: 4 })).toThrow(LpoError);
    const m2 = await unet();
    expect(() => addLoRA(m2, { rank: 4, targets: ['no_such_layer'] })).toThrow(ArgumentError);
    m.dispose();
    m2.dispose();
  });
});

describe('merge, bypass and the reference model', () => {
  it('merged output equals the unmerged one (relL2 < 1e-5); unmerge restores W', async () => {
    const m = await unet();
    addLoRA(m, { rank: 4, gen: new Generator(8) });
    await loadLoRA(m, LORA_FILE); // random non-zero B
    const { x, ctx } = inputs();
    const W0 = await loraLayers(m)[0][1].weight.toArray();
    const y0 = await run(m, x, ctx).toArray();
    mergeLoRA(m);
    expect(loraLayers(m).every(([, l]) => l.isMerged)).toBe(true);
    const y1 = await run(m, x, ctx).toArray();
    expect(() => withLoRABypassed(m, () => run(m, x, ctx))).toThrow(LpoError);
    unmergeLoRA(m);
    const e = relL2(y1, y0);
    console.log(`merged vs unmerged relL2 ${e.toExponential(2)}; W after unmerge relL2 ${relL2(await loraLayers(m)[0][1].weight.toArray(), W0).toExponential(2)}`);
    expect(e).toBeLessThan(1e-5);
    expect(relL2(await loraLayers(m)[0][1].weight.toArray(), W0)).toBeLessThan(1e-6);
    m.dispose();
  });

  it('the bypassed policy is bit-for-bit the base U-Net, and stays so after AdamW steps on the LoRA', async () => {
    const base = await unet();
    const m = await unet();
    addLoRA(m, { rank: 4, gen: new Generator(9) });
    await loadLoRA(m, LORA_FILE);
    const { x, ctx } = inputs();
    // Under noGrad, as the trainer computes the reference: a recorded forward takes the unfused ops (the fused
    // LayerNorm/q-k-v launches have no backward of their own), whose float rounding differs.
    const yBase = await noGrad(() => run(base, x, ctx)).toArray();
    const yRef0 = await withLoRABypassed(m, () => noGrad(() => run(m, x, ctx))).toArray();
    expect(Array.from(yRef0)).toEqual(Array.from(yBase));
    const yPol0 = await run(m, x, ctx).toArray();
    expect(relL2(yPol0, yBase)).toBeGreaterThan(1e-3);
    const opt = new AdamW(loraParameters(m), { lr: 1e-2, weightDecay: 1e-4 });
    const R = Tensor.randn([2, 4, 8, 8], new Generator(4));
    for (let i = 0; i < 3; i++) {
      backward(sumAll(mul(run(m, x, ctx), R)));
      opt.step();
      opt.zeroGrad();
    }
    const yPol1 = await run(m, x, ctx).toArray();
    expect(relL2(yPol1, yPol0)).toBeGreaterThan(1e-4); // the policy moved
    expect(Array.from(await withLoRABypassed(m, () => noGrad(() => run(m, x, ctx))).toArray())).toEqual(Array.from(yBase));
    // The switch is restored afterwards, also when the function throws.
    expect(loraLayers(m).every(([, l]) => !l.bypass)).toBe(true);
    expect(() => withLoRABypassed(m, () => { throw new Error('boom'); })).toThrow('boom');
    expect(loraLayers(m).every(([, l]) => !l.bypass)).toBe(true);
    setLoRABypass(m, true);
    expect(loraLayers(m).every(([, l]) => l.bypass)).toBe(true);
    setLoRABypass(m, false);
    opt.dispose();
    base.dispose();
    m.dispose();
  });
});

describe('LoRA files (diffusers load_lora_weights format)', () => {
  it('a file we write has exactly the golden file\'s keys, shapes and dtypes, and round-trips', async () => {
    const m = await unet();
    addLoRA(m, { rank: 4, gen: new Generator(10) });
    const out = join(dir, 'ours.safetensors');
    await saveLoRA(m, out);
    const a = SafetensorsFile.openSync(out);
    const b = SafetensorsFile.openSync(LORA_FILE);
    expect(a.keys().sort()).toEqual(b.keys().sort());
    for (const k of b.keys()) {
      expect(a.info(k).shape, k).toEqual(b.info(k).shape);
      expect(a.info(k).dtype).toBe(b.info(k).dtype);
    }
    expect(a.metadata).toEqual({ format: 'pt' });
    a.closeSync();
    // load the golden file, save, reload into a fresh model: same values.
    await loadLoRA(m, LORA_FILE);
    await saveLoRA(m, out);
    const m2 = await unet();
    expect(await injectLoRAFromFile(m2, out)).toHaveLength(32);
    const layers = new Map<string, LoRALinear>(loraLayers(m2));
    for (const k of b.keys()) {
      const l = layers.get(k.replace(/^unet\./, '').replace(/\.lora_[AB]\.weight$/, ''))!;
      const t = k.endsWith('lora_A.weight') ? l.loraA : l.loraB;
      expect(Array.from(await t.toArray())).toEqual(Array.from(b.readF32Sync(k)));
    }
    b.closeSync();
    m.dispose();
    m2.dispose();
  });

  it("reads the older '.lora.down/.lora.up' spelling; alpha ≠ rank travels in __metadata__", async () => {
    const b = SafetensorsFile.openSync(LORA_FILE);
    const old: Record<string, TensorToWrite> = {};
    for (const k of b.keys()) old[k.replace('.lora_A.weight', '.lora.down.weight').replace('.lora_B.weight', '.lora.up.weight')] = { dtype: 'F32', shape: b.info(k).shape, data: b.readF32Sync(k) };
    b.closeSync();
    const oldFile = join(dir, 'old.safetensors');
    await writeSafetensors(oldFile, old);
    const m = await unet();
    await injectLoRAFromFile(m, oldFile);
    expect(loraLayers(m)[0][1].scale).toBe(1);
    const m2 = await unet();
    addLoRA(m2, { rank: 4, alpha: 8 });
    const f = join(dir, 'alpha.safetensors');
    await saveLoRA(m2, f);
    const h = SafetensorsFile.openSync(f);
    expect(h.metadata.lora_alpha).toBe('8');
    h.closeSync();
    await expect(loadLoRA(m, f)).rejects.toThrow(/alpha 8 in the file, 4 in the adapter/);
    const m3 = await unet();
    await injectLoRAFromFile(m3, f);
    expect(loraLayers(m3)[0][1].scale).toBe(2);
    for (const x of [m, m2, m3]) x.dispose();
  });

  it('malformed files are FileFormatErrors naming the problem', async () => {
    const b = SafetensorsFile.openSync(LORA_FILE);
    const all: Record<string, TensorToWrite> = {};
    for (const k of b.keys()) all[k] = { dtype: 'F32', shape: b.info(k).shape, data: b.readF32Sync(k) };
    b.closeSync();
    const write = async (name: string, edit: (t: Record<string, TensorToWrite>) => void) => {
      const t = { ...all };
      edit(t);
      const p = join(dir, name);
      await writeSafetensors(p, t);
      return p;
    };
    const first = Object.keys(all).find((k) => k.endsWith('lora_B.weight'))!;
    const m = await unet();
    addLoRA(m, { rank: 4 });
    await expect(loadLoRA(m, await write('noB.safetensors', (t) => delete t[first]))).rejects.toThrow(FileFormatError);
    await expect(loadLoRA(m, await write('extra.safetensors', (t) => { t['unet.conv_in.lora_A.weight'] = t[first.replace('lora_B', 'lora_A')]; t['unet.conv_in.lora_B.weight'] = t[first]; }))).rejects.toThrow(/without an adapter/);
    await expect(loadLoRA(m, await write('junk.safetensors', (t) => { t['text_encoder.foo'] = t[first]; }))).rejects.toThrow(/not unet\.<module>/);
    await expect(loadLoRA(m, await write('shape.safetensors', (t) => { t[first] = { dtype: 'F32', shape: [t[first].shape[0], 2], data: new Float32Array(t[first].shape[0] * 2) }; }))).rejects.toThrow(FileFormatError);
    const m2 = await unet();
    await expect(injectLoRAFromFile(m2, await write('mixed.safetensors', (t) => {
      const a = first.replace('lora_B', 'lora_A');
      t[a] = { dtype: 'F32', shape: [2, t[a].shape[1]], data: new Float32Array(2 * t[a].shape[1]) };
      t[first] = { dtype: 'F32', shape: [t[first].shape[0], 2], data: new Float32Array(t[first].shape[0] * 2) };
    }))).rejects.toThrow(/mixed LoRA ranks/);
    m.dispose();
    m2.dispose();
  });
});
