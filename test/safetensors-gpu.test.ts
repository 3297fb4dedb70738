// GPU side of the io layer: readTensor uploads, and loading a real nn Module from a legacy-named file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { StateDictError } from '../src/nn/module.js';
import { vaeLegacyRename } from '../src/nn/vae.js';
import { ShapeModule } from './ref/shape_module.js';
import { Tensor } from '../src/tensor/tensor.js';
import { toHalfBits, fromHalfBits } from '../src/tensor/half.js';

const GOLDEN = path.resolve(__dirname, 'fixtures/golden');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lpo-stgpu-'));
beforeAll(setupGpu);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('readTensor', () => {
  it('uploads F32 as f32 or f16, F16 bits as f16 (odd lengths padded), I64 as i32, with a shape override', async () => {
    const vals = [0.1, -2.5, 3e-5, 65504, 1 / 3];
    const p = path.join(dir, 'gpu.safetensors');
    await writeSafetensors(p, {
      f: { dtype: 'F32', shape: [5], data: vals },
      h: { dtype: 'F16', shape: [5], data: vals },
      ids: { dtype: 'I64', shape: [1, 5], data: [49406, 320, 0, -3, 49407] },
      conv: { dtype: 'F32', shape: [2, 3, 1, 1], data: [1, 2, 3, 4, 5, 6] },
    });
    const f = await SafetensorsFile.open(p);
    const halves = vals.map((v) => fromHalfBits(toHalfBits(v)));
    const t1 = await f.readTensor('f');
    expect([t1.dtype, [...t1.shape], t1.name]).toEqual(['f32', [5], 'f']);
    expect(Array.from(await t1.toArray())).toEqual(vals.map(Math.fround));
    const t2 = await f.readTensor('f', { dtype: 'f16' });
    expect(t2.dtype).toBe('f16');
    expect(Array.from(await t2.toArray())).toEqual(halves);
    const t3 = await f.readTensor('h', { dtype: 'f16' });
    expect(Array.from(await t3.toArray())).toEqual(halves);
    const t4 = await f.readTensor('h');
    expect(t4.dtype).toBe('f32');
    expect(Array.from(await t4.toArray())).toEqual(halves);
    const t5 = await f.readTensor('ids');
    expect(t5.dtype).toBe('i32');
    expect(Array.from(await t5.toInt32Array())).toEqual([49406, 320, 0, -3, 49407]);
    const t6 = await f.readTensor('conv', { shape: [2, 3] });
    expect([...t6.shape]).toEqual([2, 3]);
    await expect(f.readTensor('conv', { shape: [4, 2] })).rejects.toThrow(/tensor "conv": cannot load \[2, 3, 1, 1\] as \[4, 2\]/);
    for (const t of [t1, t2, t3, t4, t5, t6]) t.dispose();
    await f.close();
  });
});

describe('loading an nn Module', () => {
  it('loads a legacy-named VAE checkpoint (query/key/value/proj_attn) into to_q/to_k/to_v/to_out.0 parameters', async () => {
    const cur = await SafetensorsFile.open(path.join(GOLDEN, 'vae/weights.safetensors'));
    const leg = await SafetensorsFile.open(path.join(GOLDEN, 'vae/legacy_attention_keys.safetensors'));
    const manifest = JSON.parse(fs.readFileSync(path.join(GOLDEN, 'manifest.json'), 'utf8'));
    const map = manifest.sections.vae.legacy_attention_keys.legacy_to_current as Record<string, string>;
    const currentNames = new Set(Object.values(map));
    const out: Record<string, TensorToWrite> = {};
    for (const k of cur.keys()) if (!currentNames.has(k)) out[k] = { dtype: 'F32', shape: cur.info(k).shape, data: await cur.readF32(k) };
    for (const k of leg.keys()) out[k] = { dtype: 'F32', shape: leg.info(k).shape, data: await leg.readF32(k) };
    const legacyPath = path.join(dir, 'vae_legacy.safetensors');
    await writeSafetensors(legacyPath, out);
    const legacy = await SafetensorsFile.open(legacyPath);

    const shapes = new Map(cur.keys().map((k) => [k, cur.info(k).shape] as const));
    // Key names are declared by the module: without the VAE's rename the legacy file does not load.
    const plain = new ShapeModule(shapes);
    await expect(plain.loadStateDict(legacy)).rejects.toThrow(StateDictError);
    plain.dispose();
    const model = new ShapeModule(shapes, { rename: vaeLegacyRename });
    expect(model.namedParameters().length).toBe(manifest.sections.vae.weights_keys);
    const r = await model.loadStateDict(legacy);
    expect(r.loaded).toBe(manifest.sections.vae.weights_keys);
    for (const [k, p] of model.namedParameters()) {
      expect(Array.from(await p.toArray()), k).toEqual(Array.from(await cur.readF32(k)));
    }
    model.dispose();
    await Promise.all([cur.close(), leg.close(), legacy.close()]);
  });
});
