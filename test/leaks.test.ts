// Error paths and backward rules give back every GPU buffer they take.
import { mkdtempSync, writeFileSync, copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { gpu } from '../src/gpu/runtime.js';
import { Tensor, tidy } from '../src/tensor/tensor.js';
import * as E from '../src/tensor/ops/elementwise.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { backward, requireGrad, zeroGrad } from '../src/autograd/tape.js';
import { CLIPTextModel } from '../src/nn/clip.js';
import '../src/io/pretrained.js'; // links the models' fromPretrained to io (the package entry does this)
import { loraLinear } from '../src/tensor/ops/lora.js';
import { ShapeError } from '../src/errors.js';

beforeAll(setupGpu);

const inUse = async () => { await gpu().sync(); return gpu().pool.stats().inUseBytes; };
const GOLDEN = [resolve(__dirname, 'fixtures/golden'), resolve(__dirname, '../../shared/golden')].find((d) => existsSync(join(d, 'manifest.json')))!;

describe('no leaks', () => {
  it('binary ops free their backward intermediates (div, broadcast mul/sub, maximum)', async () => {
    const a = requireGrad(Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]));
    const b = requireGrad(Tensor.fromArray([0.5, -1.5, 2], [3]));
    for (const f of [E.div, E.mul, E.sub, E.maximum, E.minimum]) {
      const before = await inUse();
      const loss = tidy(() => sumAll(f(a, b))); // the forward's own intermediate goes with the tidy
      backward(loss);
      loss.dispose();
      zeroGrad([a, b]);
      expect(await inUse(), f.name).toBe(before);
    }
  });

  it('the LoRA backward frees its intermediates (g, u recomputation, views)', async () => {
    const x = Tensor.fromArray(Float32Array.from({ length: 6 * 5 }, (_, i) => Math.sin(i)), [2, 3, 5]);
    const W = Tensor.fromArray(Float32Array.from({ length: 4 * 5 }, (_, i) => Math.cos(i)), [4, 5]);
    const A = requireGrad(Tensor.fromArray(Float32Array.from({ length: 2 * 5 }, (_, i) => 0.1 * i), [2, 5]));
    const B = requireGrad(Tensor.fromArray(Float32Array.from({ length: 4 * 2 }, (_, i) => 0.2 - 0.05 * i), [4, 2]));
    const before = await inUse();
    const loss = tidy(() => sumAll(loraLinear(x, W, null, A, B, 0.5)));
    backward(loss);
    loss.dispose();
    zeroGrad([A, B]);
    expect(await inUse()).toBe(before);
  });

  it('tidy frees what a failing computation made', async () => {
    const before = await inUse();
    expect(() => tidy(() => {
      E.exp(Tensor.fromArray([1, 2, 3], [3]));
      throw new ShapeError('boom');
    })).toThrow('boom');
    expect(await inUse()).toBe(before);
  });

  it('fromPretrained with corrupt weights takes no GPU memory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lpo-leak-'));
    copyFileSync(join(GOLDEN, 'text_encoder/config.json'), join(dir, 'config.json'));
    writeFileSync(join(dir, 'model.safetensors'), Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 34, 120, 34, 58, 123, 125, 125]));
    const before = await inUse();
    await expect(CLIPTextModel.fromPretrained(dir)).rejects.toThrow(/model\.safetensors/);
    expect(await inUse()).toBe(before);
  });
});
