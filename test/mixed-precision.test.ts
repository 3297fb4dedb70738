// Mixed precision as an option of the models and ops (issue 12): Module.half() (frozen matmul/conv
// weights in f16, trainable parameters f32), withAutocast (the compute ops on the f16 kernels), the
// dynamic loss scale, and a tiny SD-layout U-Net with LoRA forward/backward in mixed precision vs f32.
//
// U-Net tolerance: every conv/linear/attention rounds its operands to f16 (≈ 4e-4 relative per product,
// test/ref/half.ts) and the tiny U-Net chains ~20 of them from input to output (conv_in, 2 resnets of 2
// convs per level and the mid block, 3 transformers of 4 products and attention, conv_out). Independent
// errors add in quadrature: √20·4e-4 ≈ 1.8e-3; group norms re-normalise rather than amplify. The output
// is held to 1e-2 (5× that). LoRA gradients come back through twice the products (forward and
// backward) with the same argument, ≈ 2.5e-3 expected; held to 2e-2.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { setupGpu, randNonZero, relL2 } from './helpers.js';
import { F16_TOL } from './ref/half.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { matmul, linear } from '../src/tensor/ops/matmul.js';
import { conv2d } from '../src/tensor/ops/conv2d.js';
import { reshape } from '../src/tensor/ops/layout.js';
import { withAutocast, autocastEnabled } from '../src/tensor/ops/autocast.js';
import { backward, requireGrad, noGrad } from '../src/autograd/tape.js';
import { Linear, LoRALinear } from '../src/nn/linear.js';
import { Conv2d } from '../src/nn/layers.js';
import { Module } from '../src/nn/module.js';
import { addLoRA, loraParameters } from '../src/nn/lora.js';
import { UNet2DConditionModel } from '../src/nn/unet.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { DynamicLossScaler } from '../src/optim/loss_scale.js';
import { StepGuard } from '../src/optim/guard.js';
import { AdamW } from '../src/optim/adamw.js';

const g0 = await setupGpu();
const canRun = g0.acquired.hasF16 && g0.acquired.hasSubgroups;
beforeAll(setupGpu);
vi.setConfig({ testTimeout: 900_000 });

class Tiny extends Module {
  readonly conv: Conv2d;
  readonly fc: Linear;
  readonly lora: LoRALinear;
  constructor() {
    super();
    const gen = new Generator(2);
    this.conv = this.registerModule('conv', new Conv2d(3, 5, 3, { padding: 1, gen }));
    this.fc = this.registerModule('fc', new Linear(5 * 4 * 4, 12, { gen }));
    this.lora = this.registerModule('lora', new LoRALinear(new Linear(12, 7, { gen }), { rank: 2, gen }));
  }
  forward(x: Tensor): Tensor {
    const h = this.conv.forward(x);
    const f = this.fc.forward(h.view([x.shape[0], -1]));
    return this.lora.forward(f);
  }
}

describe.skipIf(!canRun)('Module.half and withAutocast', () => {
  it('half(): frozen matmul/conv weights become f16 everywhere they are held; factors and biases stay f32; float() restores', async () => {
    const m = new Tiny();
    m.fc.freeze();
    m.conv.freeze();
    const gen = new Generator(4);
    const x = Tensor.fromArray(randNonZero(gen, 2 * 3 * 4 * 4), [2, 3, 4, 4]);
    const ref = await noGrad(() => m.forward(x)).toArray();
    expect(m.half()).toBe(3);
    expect([m.conv.weight.dtype, m.fc.weight.dtype, m.lora.weight.dtype, m.lora.base.weight.dtype]).toEqual(['f16', 'f16', 'f16', 'f16']);
    expect(m.lora.base.weight).toBe(m.lora.weight);
    expect([m.conv.bias!.dtype, m.fc.bias!.dtype, m.lora.loraA.dtype, m.lora.loraB.dtype]).toEqual(['f32', 'f32', 'f32', 'f32']);
    expect(m.stateDict().get('fc.weight')!.dtype).toBe('f16');
    const y = noGrad(() => m.forward(x));
    expect(y.dtype).toBe('f32');
    const e = relL2(await y.toArray(), ref);
    console.log(`half() tiny model: relL2 vs f32 ${e.toExponential(2)}`);
    expect(e).toBeLessThan(F16_TOL);
    expect(m.float()).toBe(3);
    expect(m.fc.weight.dtype).toBe('f32');
    m.dispose();
  });

  it('withAutocast: matmul and linear of f32 tensors run on the f16 kernels (f16-level difference, f32 output), and nest', async () => {
    const gen = new Generator(6);
    const a = Tensor.fromArray(randNonZero(gen, 19 * 33), [19, 33]);
    const w = Tensor.fromArray(randNonZero(gen, 21 * 33), [21, 33]);
    const exact = await linear(a, w).toArray();
    const y = withAutocast(() => withAutocast(() => linear(a, w)));
    expect(autocastEnabled()).toBe(false);
    expect(y.dtype).toBe('f32');
    const yv = await y.toArray();
    const e = relL2(yv, exact);
    console.log(`autocast linear: relL2 vs f32 ${e.toExponential(2)}`);
    expect(e).toBeGreaterThan(1e-6); // it did round to f16
    expect(e).toBeLessThan(F16_TOL);
    const p = await withAutocast(async () => { await Promise.resolve(); return matmul(a, w, { transB: true }); });
    expect(relL2(await p.toArray(), yv)).toBe(0);
  });

  // The routes add a per-row bias, a residual and a conv shift after the f16 product with f32 ops; each of
  // those operands must keep its gradient (a non-recorded handle on it once dropped them silently).
  it('withAutocast keeps the gradient of every operand: matmul bias-per-row + residual, conv2d shift + residual', async () => {
    const gen = new Generator(7);
    const leaf = (shape: number[]) => requireGrad(Tensor.fromArray(randNonZero(gen, shape.reduce((a, b) => a * b, 1)), shape));
    const w = leaf([11, 9]), h = leaf([2, 13, 9]), bias = leaf([11]), res = leaf([2, 11, 13]);
    const x = leaf([2, 3, 5, 7]), k = leaf([4, 3, 3, 3]), shift = leaf([2, 4]), cres = leaf([2, 4, 5, 7]);
    const leaves = [w, h, bias, res, x, k, shift, cres];
    const grads = async (mixed: boolean) => {
      const f = () => {
        const y1 = matmul(w, h, { transB: true, bias, biasRows: true, residual: res });
        const y2 = conv2d(x, k, null, { padding: 1, shift, residual: cres });
        return [y1, y2];
      };
      const ys = mixed ? withAutocast(f) : f();
      const loss = ys.map((y) => matmul(reshape(y, [1, -1]), Tensor.fromArray(randNonZero(new Generator(1), y.size), [y.size, 1])));
      backward(reshape(matmul(loss[0], loss[1]), []));
      const out: Float32Array[] = [];
      for (const p of leaves) {
        out.push(await p.grad!.toArray());
        p.grad!.dispose();
        p.grad = null;
      }
      return out;
    };
    const ref = await grads(false);
    const mix = await grads(true);
    const errs = mix.map((g, i) => relL2(g, ref[i]));
    console.log(`autocast route gradients vs f32 (w h bias res | x k shift res): ${errs.map((e) => e.toExponential(1)).join(' ')}`);
    for (const e of errs) expect(e).toBeLessThan(F16_TOL);
  });
});

describe('DynamicLossScaler', () => {
  it('backs off on overflow, grows after growthInterval good steps, stays within bounds', () => {
    const s = new DynamicLossScaler({ initScale: 1024, growthInterval: 3, minScale: 256, maxScale: 4096 });
    expect(s.settleSteps()).toBe(2);
    s.update(false);
    expect([s.scale, s.overflows, s.lastFinite]).toEqual([512, 1, false]);
    s.update(false);
    s.update(false);
    expect(s.scale).toBe(256);
    for (let i = 0; i < 3; i++) s.update(true);
    expect(s.scale).toBe(512);
    for (let i = 0; i < 9; i++) s.update(true);
    expect(s.scale).toBe(4096);
    s.loadState({ scale: 300, goodSteps: 1, overflows: 2 });
    expect(s.state()).toEqual({ scale: 300, goodSteps: 1, overflows: 2 });
    expect(() => new DynamicLossScaler({ backoffFactor: 2 })).toThrow(/bad options/);
  });

  it.skipIf(!canRun)('f16 backward: tiny gradients survive only with a scale; an overflow is skipped through the StepGuard and halves the scale', async () => {
    const gen = new Generator(8);
    const w = requireGrad(Tensor.fromArray(randNonZero(gen, 6 * 10), [6, 10]));
    const x = Tensor.fromArray(randNonZero(gen, 4 * 10), [4, 10]);
    const W16 = Tensor.fromArray(randNonZero(gen, 5 * 6), [5, 6], 'f16');
    // loss = 1e-6 · Σ (x·wᵀ)·W16ᵀ: the gradient reaching the f16 products is 1e-6 — below f16's normal range.
    // The products run under autocast, the loss reduction in f32 (as torch.autocast runs losses): a
    // reduction on the f16 kernels would stage the seed gradient (the scale itself, 2^16 > 65504) as f16
    // and overflow. reshape, not view: view() is a handle without autograd and would cut the graph.
    const lossOf = () => {
      const y = withAutocast(() => linear(linear(x, w), W16));
      return reshape(matmul(reshape(y, [1, -1]), Tensor.fromArray(new Float32Array(20).fill(1e-6), [20, 1])), []);
    };
    const dw = async (scale: number) => {
      const s = new DynamicLossScaler({ initScale: scale, minScale: 1 });
      backward(s.scaleLoss(lossOf()));
      s.unscale([w]);
      const g = await w.grad!.toArray();
      w.grad!.dispose();
      w.grad = null;
      return g;
    };
    const unscaled = await dw(1);
    const scaled = await dw(2 ** 16);
    const ref = await (async () => {
      // f32 reference: the same loss without f16 anywhere.
      const W32 = Tensor.fromArray(await W16.toArray(), [5, 6]);
      const y = linear(linear(x, w), W32);
      backward(reshape(matmul(reshape(y, [1, -1]), Tensor.fromArray(new Float32Array(20).fill(1e-6), [20, 1])), []));
      const g = await w.grad!.toArray();
      w.grad!.dispose();
      w.grad = null;
      return g;
    })();
    const eUnscaled = relL2(unscaled, ref);
    const eScaled = relL2(scaled, ref);
    console.log(`loss scale: dW relL2 vs f32 without scale ${eUnscaled.toExponential(2)}, with 2^16 ${eScaled.toExponential(2)}`);
    expect(eScaled).toBeLessThan(F16_TOL);
    expect(eUnscaled).toBeGreaterThan(10 * eScaled);

    // Overflow: a scale so large that the f16 operands overflow → non-finite gradient → skipped, scale halves.
    const opt = new AdamW([w], { lr: 0.1 });
    const before = await w.toArray();
    const s = new DynamicLossScaler({ initScale: 2 ** 40, maxScale: 2 ** 40, minScale: 1 });
    const guard = new StepGuard({ scaler: s, maxConsecutive: s.settleSteps() + 2, log: () => {} });
    backward(s.scaleLoss(lossOf()));
    s.unscale(opt.params);
    const v = await guard.step(opt, []);
    expect(v.finite).toBe(false);
    expect([s.scale, s.overflows]).toEqual([2 ** 39, 1]);
    expect(await w.toArray()).toEqual(before);
  });
});

const GOLDEN = ['test/fixtures/golden/unet', '/work/shared/golden/unet'].find((d) => fs.existsSync(path.join(d, 'weights.safetensors')));

describe.skipIf(!canRun || !GOLDEN)('tiny U-Net with LoRA: mixed precision vs f32', () => {
  let unet: UNet2DConditionModel;
  beforeAll(async () => {
    const config = JSON.parse(fs.readFileSync(path.join(GOLDEN!, 'config.json'), 'utf8'));
    unet = new UNet2DConditionModel(config);
    const weights = SafetensorsFile.openSync(path.join(GOLDEN!, 'weights.safetensors'));
    await unet.loadStateDict(weights);
    weights.closeSync();
    addLoRA(unet, { rank: 4, gen: new Generator(3) });
    // A fresh adapter has B = 0 (then dA = 0): give B values so that every factor gets a gradient.
    const gen = new Generator(5);
    for (const p of loraParameters(unet)) if (p.shape[1] === 4) p.write(randNonZero(gen, p.size, 0.01, 0.05));
  });
  afterAll(() => unet?.dispose());

  it(`forward relL2 < 1e-2 and LoRA gradients < 2e-2 vs f32 (half() + withAutocast)`, async () => {
    const gen = new Generator(9);
    const x = Tensor.fromArray(randNonZero(gen, 2 * 4 * 8 * 8), [2, 4, 8, 8]);
    const ctx = Tensor.fromArray(randNonZero(gen, 2 * 77 * 16), [2, 77, 16]);
    const r = Tensor.fromArray(randNonZero(gen, 2 * 4 * 8 * 8), [2, 4, 8, 8]);
    const params = loraParameters(unet);
    const run = async (mixed: boolean) => {
      const y = mixed ? withAutocast(() => unet.forward(x, [10, 500], ctx).sample) : unet.forward(x, [10, 500], ctx).sample;
      const yv = await y.toArray();
      backward(y, r);
      const grads = await Promise.all(params.map((p) => p.grad!.toArray()));
      unet.zeroGrad();
      return { yv, grads };
    };
    const ref = await run(false);
    const converted = unet.half();
    expect(converted).toBeGreaterThan(20);
    expect(params.every((p) => p.dtype === 'f32')).toBe(true);
    const mix = await run(true);
    const eY = relL2(mix.yv, ref.yv);
    const flat = (gs: Float32Array[]) => Float64Array.from(gs.flatMap((g) => Array.from(g)));
    const eG = relL2(flat(mix.grads), flat(ref.grads));
    const worst = Math.max(...mix.grads.map((g, i) => relL2(g, ref.grads[i])));
    console.log(`tiny U-Net mixed vs f32: output relL2 ${eY.toExponential(2)}, LoRA grads relL2 ${eG.toExponential(2)} (worst tensor ${worst.toExponential(2)}), ${converted} tensors in f16`);
    expect(eY).toBeLessThan(1e-2);
    expect(eG).toBeLessThan(2e-2);
  });
});
