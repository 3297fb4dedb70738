// AutoencoderKL vs the golden diffusers 0.27.2 outputs (tiny SD-layout VAE, every parameter random).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2 } from './helpers.js';
import { gpu } from '../src/gpu/runtime.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { noGrad } from '../src/autograd/tape.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { StateDictError } from '../src/nn/module.js';
import type { WeightsReader } from '../src/io/weights.js';
import '../src/io/pretrained.js'; // links the models' fromPretrained to io (the package entry does this)
import { AutoencoderKL, parseVAEConfig, type VAEFeatures } from '../src/nn/vae.js';

const GOLDEN = ['test/fixtures/golden/vae', '/work/shared/golden/vae'].find((d) => fs.existsSync(path.join(d, 'outputs.safetensors')))!;
const config = JSON.parse(fs.readFileSync(path.join(GOLDEN, 'config.json'), 'utf8'));
const TOL = 1e-4;

let weights: SafetensorsFile;
let legacy: SafetensorsFile;
let inputs: SafetensorsFile;
let outputs: SafetensorsFile;
let vae: AutoencoderKL;
const figures: Record<string, number> = {};

beforeAll(async () => {
  await setupGpu();
  weights = SafetensorsFile.openSync(path.join(GOLDEN, 'weights.safetensors'));
  legacy = SafetensorsFile.openSync(path.join(GOLDEN, 'legacy_attention_keys.safetensors'));
  inputs = SafetensorsFile.openSync(path.join(GOLDEN, 'inputs.safetensors'));
  outputs = SafetensorsFile.openSync(path.join(GOLDEN, 'outputs.safetensors'));
  vae = new AutoencoderKL(config);
  await vae.loadStateDict(weights);
  vae.freeze();
});

afterAll(() => {
  if (Object.keys(figures).length) console.log(`VAE relL2 vs golden:\n${Object.entries(figures).map(([k, v]) => `  ${k.padEnd(30)} ${v.toExponential(2)}`).join('\n')}`);
  vae?.dispose();
  for (const f of [weights, legacy, inputs, outputs]) f?.closeSync();
});

function input(key: string): Tensor {
  return Tensor.fromArray(inputs.readF32Sync(key), inputs.info(key).shape);
}

async function compare(name: string, t: Tensor, key = name): Promise<number> {
  expect([...t.shape]).toEqual([...outputs.info(key).shape]);
  const e = relL2(await t.toArray(), outputs.readF32Sync(key));
  figures[name] = e;
  expect(e, name).toBeLessThan(TOL);
  return e;
}

/** Several files seen as one reader, with some keys hidden. */
function union(files: SafetensorsFile[], hide: (k: string) => boolean = () => false): WeightsReader {
  const owner = new Map<string, SafetensorsFile>();
  for (const f of files) for (const k of f.keys()) if (!hide(k)) owner.set(k, f);
  const f = (k: string) => owner.get(k)!;
  return {
    path: 'union',
    metadata: {},
    keys: () => [...owner.keys()],
    has: (k: string) => owner.has(k),
    info: (k: string) => f(k).info(k),
    readF32: (k: string) => f(k).readF32(k),
    readInt32: (k: string) => f(k).readInt32(k),
    readTensor: (k: string) => f(k).readTensor(k),
    close: async () => {},
  };
}

const CURRENT_ATTN = /mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\./;

describe('AutoencoderKL', () => {
  it('parses the config and has exactly the golden checkpoint keys and shapes', () => {
    const c = parseVAEConfig(config);
    expect(c.scalingFactor).toBe(0.18215);
    expect(vae.scalingFactor).toBe(0.18215);
    expect(vae.downsampleFactor).toBe(2);
    expect(vae.checkStateDict(weights)).toEqual({ missing: [], unexpected: [], wrongShape: [], ignored: [] });
    expect(vae.stateDict().size).toBe(124);
    expect(vae.numParameters()).toBe(167959);
  });

  it('encode: posterior mean, logvar, std and the encoder taps match', async () => {
    const x = input('image');
    const features: VAEFeatures = {};
    const post = noGrad(() => vae.encode(x, { features }));
    await compare('posterior_mean', post.mean);
    await compare('posterior_logvar', post.logvar);
    await compare('posterior_std', post.std);
    for (const k of ['down_blocks.0', 'down_blocks.1', 'mid_block']) await compare(`debug.encoder.${k}`, features[k]);
    // reconstruction = decode(posterior mean)
    const rec = vae.decode(post.mean);
    await compare('reconstruction', rec);
    // sample = mean + std·ε with ε drawn from the generator
    const s = post.sample(new Generator(7));
    const [sv, mv, stdv] = await Promise.all([s.toArray(), post.mean.toArray(), post.std.toArray()]);
    const eps = new Generator(7).normalArray(sv.length);
    const want = mv.map((m, i) => m + stdv[i] * eps[i]);
    expect(relL2(sv, want)).toBeLessThan(1e-6);
    for (const t of [x, rec, s, ...Object.values(features)]) t.dispose();
    post.dispose();
  });

  it('decode: decoded image and the decoder taps match', async () => {
    const z = input('latent');
    const features: VAEFeatures = {};
    const img = vae.decode(z, { features });
    await compare('decoded', img);
    for (const k of ['mid_block', 'up_blocks.0', 'up_blocks.1']) await compare(`debug.decoder.${k}`, features[k]);
    for (const t of [z, img, ...Object.values(features)]) t.dispose();
  });

  it('logvar is clamped to [-30, 20]', async () => {
    const m = new AutoencoderKL(config);
    m.freeze();
    // quant_conv with zero weight and bias −100 / +100 on the logvar half pins logvar at the clamps.
    const qc = m.stateDict();
    const w = qc.get('quant_conv.weight')!;
    const b = qc.get('quant_conv.bias')!;
    w.write(new Float32Array(w.size));
    b.write([0, 0, 0, 0, -100, -100, 100, 100]);
    const x = input('image');
    const post = m.encode(x);
    const lv = await post.logvar.toArray();
    const n = lv.length / 4;
    expect(lv.subarray(0, 2 * n).every((v) => v === -30)).toBe(true);
    expect(lv.subarray(2 * n).every((v) => v === 20)).toBe(true);
    post.dispose();
    x.dispose();
    m.dispose();
  });

  it('accepts the legacy attention names (query/key/value/proj_attn) and gives the same model', async () => {
    const m = new AutoencoderKL(config);
    m.freeze();
    const r = await m.loadStateDict(union([weights, legacy], (k) => CURRENT_ATTN.test(k)));
    expect(r.loaded).toBe(124);
    for (const [k, p] of m.stateDict()) expect(relL2(await p.toArray(), weights.readF32Sync(k)), k).toBe(0);
    const z = input('latent');
    const img = m.decode(z);
    figures['decoded (legacy keys)'] = await compare('decoded', img);
    z.dispose();
    img.dispose();
    m.dispose();
  });

  it('loading names a missing key and a wrong-shaped tensor', async () => {
    const m = new AutoencoderKL(config);
    const missing = 'decoder.up_blocks.1.resnets.0.conv_shortcut.weight';
    await expect(m.loadStateDict(union([weights], (k) => k === missing))).rejects.toThrow(new RegExp(`missing keys: .*${missing.replace(/\./g, '\\.')}`));
    // a legacy name given in addition to the current one is a duplicate, not silently dropped
    await expect(m.loadStateDict(union([weights, legacy]))).rejects.toThrow(StateDictError);
    const bad = union([weights]);
    const wrong = 'encoder.conv_out.weight';
    const info = bad.info;
    bad.info = (k: string) => (k === wrong ? { ...info(k), shape: [4, 32, 3, 3] } : info(k));
    const err = await m.loadStateDict(bad).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(StateDictError);
    expect(String((err as Error).message)).toContain(`${wrong} [4,32,3,3] (expected [8,32,3,3])`);
    m.dispose();
  });

  it('encode/decode free their intermediates', async () => {
    const x = input('image');
    const z = input('latent');
    const before = gpu().pool.stats().inUseBytes;
    const post = vae.encode(x);
    post.std;
    post.dispose();
    vae.decode(z).dispose();
    expect(gpu().pool.stats().inUseBytes).toBe(before);
    x.dispose();
    z.dispose();
  });

  it('fromPretrained reads a diffusers folder (config.json + weights)', async () => {
    const m = await AutoencoderKL.fromPretrained(GOLDEN);
    expect(m.stateDict().size).toBe(124);
    m.dispose();
  });
});
