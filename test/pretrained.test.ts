// The one loading route (src/io/pretrained.ts): folders and files → models built without initialisation and
// loaded strictly, freed when a load fails; models saved back as folders; named-tensor files into any module.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { setupGpu, relL2 } from './helpers.js';
import { ShapeModule } from './ref/shape_module.js';
import { makeSdFolder } from './ref/sd_folder.js';
import { gpu } from '../src/gpu/runtime.js';
import { Generator } from '../src/tensor/random.js';
import { halfToFloats, floatsToHalf } from '../src/tensor/half.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { DiffusersError } from '../src/io/weights.js';
import { fromPretrained, loadWeights, saveWeights } from '../src/io/pretrained.js';
import { StateDictError, type Module } from '../src/nn/module.js';
import { withoutInit } from '../src/nn/init.js';
import { CLIPTextModel } from '../src/nn/clip.js';
import { UNet2DConditionModel, parseUNetConfig } from '../src/nn/unet.js';
import { AutoencoderKL, parseVAEConfig } from '../src/nn/vae.js';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.js';

const GOLDEN = path.resolve(__dirname, 'fixtures/golden');
const unetConfig = JSON.parse(fs.readFileSync(path.join(GOLDEN, 'unet/config.json'), 'utf8'));
const inUse = async () => { await gpu().sync(); return gpu().pool.stats().inUseBytes; };
let dir: string;

beforeAll(async () => {
  await setupGpu();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lpo-pretrained-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function sameParams(a: Module, b: Module): Promise<void> {
  const pb = b.stateDict();
  expect([...a.stateDict().keys()]).toEqual([...pb.keys()]);
  for (const [k, p] of a.stateDict()) expect(Array.from(await p.toArray()), k).toEqual(Array.from(await pb.get(k)!.toArray()));
}

/** The golden U-Net's weights with one tensor given another shape. */
async function brokenUNet(sub: string): Promise<string> {
  const d = path.join(dir, sub);
  fs.mkdirSync(d, { recursive: true });
  fs.copyFileSync(path.join(GOLDEN, 'unet/config.json'), path.join(d, 'config.json'));
  const f = await SafetensorsFile.open(path.join(GOLDEN, 'unet/weights.safetensors'));
  const out: Record<string, TensorToWrite> = {};
  for (const k of f.keys()) out[k] = { dtype: 'F32', shape: k === 'conv_in.bias' ? [2, f.info(k).shape[0] / 2] : f.info(k).shape, data: await f.readF32(k) };
  await f.close();
  await writeSafetensors(path.join(d, 'diffusion_pytorch_model.safetensors'), out);
  return d;
}

describe('fromPretrained', () => {
  it('the class-style call, a subfolder and a lone weights file give the same strictly loaded model', async () => {
    const a = await UNet2DConditionModel.fromPretrained(path.join(GOLDEN, 'unet'));
    const b = await fromPretrained(UNet2DConditionModel, GOLDEN, { subfolder: 'unet' });
    const c = await fromPretrained(UNet2DConditionModel, path.join(GOLDEN, 'unet/weights.safetensors')); // config.json beside it
    const f = await SafetensorsFile.open(path.join(GOLDEN, 'unet/weights.safetensors'));
    const k = 'up_blocks.1.attentions.1.proj_out.weight';
    expect(Array.from(await a.stateDict().get(k)!.toArray())).toEqual(Array.from(await f.readF32(k)));
    await sameParams(a, b);
    await sameParams(a, c);
    for (const m of [a, b, c]) m.dispose();
    await f.close();
  });

  it('builds without initialising: nothing is uploaded before the load, which writes each parameter once', async () => {
    const write = vi.spyOn(gpu(), 'write');
    try {
      const bare = withoutInit(() => UNet2DConditionModel.fromConfig(unetConfig));
      expect(write).not.toHaveBeenCalled(); // no host zeros, no random numbers
      const n = bare.namedParameters().length;
      bare.dispose();
      const m = await UNet2DConditionModel.fromPretrained(path.join(GOLDEN, 'unet'));
      expect(write).toHaveBeenCalledTimes(n);
      m.dispose();
      write.mockClear();
      new UNet2DConditionModel(unetConfig).dispose(); // an ordinary build initialises every parameter
      expect(write).toHaveBeenCalledTimes(n);
    } finally {
      write.mockRestore();
    }
  });

  it('a failing load frees the model and names the problem; a config for another class is refused', async () => {
    const bad = await brokenUNet('broken-unet');
    const before = await inUse();
    const err = await UNet2DConditionModel.fromPretrained(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateDictError);
    expect((err as Error).message).toMatch(/conv_in\.bias \[2,16\] \(expected \[32\]\)/);
    expect((err as Error).message).toContain(path.join(bad, 'diffusion_pytorch_model.safetensors'));
    expect(await inUse()).toBe(before);
    await expect(fromPretrained(AutoencoderKL, path.join(GOLDEN, 'unet'))).rejects.toThrow(/the config is for UNet2DConditionModel, not AutoencoderKL/);
    await expect(fromPretrained(AutoencoderKL, path.join(dir, 'nowhere'))).rejects.toThrow(DiffusersError);
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    await expect(CLIPTextModel.fromPretrained(empty)).rejects.toThrow(/no weights \(looked for diffusion_pytorch_model\[\.fp16\]\.safetensors/);
  });

  it('a truncated U-Net (upBlocks: false) loads a full checkpoint and leaves its up path unread', async () => {
    const truncated = { className: 'UNet2DConditionModel', fromConfig: (c: Record<string, unknown>) => new UNet2DConditionModel(c, { upBlocks: false }) };
    const m = await fromPretrained(truncated, path.join(GOLDEN, 'unet'));
    const keys = [...m.stateDict().keys()];
    expect(keys.some((k) => /^(up_blocks|conv_norm_out|conv_out)\./.test(k))).toBe(false);
    const f = await SafetensorsFile.open(path.join(GOLDEN, 'unet/weights.safetensors'));
    expect(m.checkStateDict(f).ignored.length).toBe(f.keys().length - keys.length);
    const k = 'mid_block.attentions.0.proj_in.weight';
    expect(Array.from(await m.stateDict().get(k)!.toArray())).toEqual(Array.from(await f.readF32(k)));
    m.dispose();
    await f.close();
  });
});

describe('savePretrained / saveWeights', () => {
  it('a saved U-Net folder (config.json + diffusion_pytorch_model.safetensors) loads back equal, config included', async () => {
    const m = new UNet2DConditionModel(unetConfig, { gen: new Generator(3) });
    const out = path.join(dir, 'saved/unet');
    await m.savePretrained(out);
    expect(fs.readdirSync(out).sort()).toEqual(['config.json', 'diffusion_pytorch_model.safetensors']);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(json._class_name).toBe('UNet2DConditionModel');
    expect(parseUNetConfig(json)).toEqual(m.config);
    const back = await UNet2DConditionModel.fromPretrained(out);
    await sameParams(back, m);
    m.dispose();
    back.dispose();
  });

  it('the fp16 variant writes F16 weights that load back rounded to half precision; a text encoder saves as model.safetensors', async () => {
    const vae = new AutoencoderKL(JSON.parse(fs.readFileSync(path.join(GOLDEN, 'vae/config.json'), 'utf8')), { gen: new Generator(4) });
    const out = path.join(dir, 'saved/vae');
    await vae.savePretrained(out, { variant: 'fp16' });
    const f = await SafetensorsFile.open(path.join(out, 'diffusion_pytorch_model.fp16.safetensors'));
    expect(new Set(f.keys().map((k) => f.info(k).dtype))).toEqual(new Set(['F16']));
    await f.close();
    const back = await AutoencoderKL.fromPretrained(out, { preferFp16: true });
    expect(parseVAEConfig(back.toConfig())).toEqual(vae.config);
    const k = 'decoder.conv_in.weight';
    const want = halfToFloats(floatsToHalf(await vae.stateDict().get(k)!.toArray()));
    expect(Array.from(await back.stateDict().get(k)!.toArray())).toEqual(Array.from(want));
    vae.dispose();
    back.dispose();

    const te = await CLIPTextModel.fromPretrained(path.join(GOLDEN, 'text_encoder'));
    const teOut = path.join(dir, 'saved/text_encoder');
    await te.savePretrained(teOut);
    expect(fs.readdirSync(teOut).sort()).toEqual(['config.json', 'model.safetensors']);
    const te2 = await CLIPTextModel.fromPretrained(teOut);
    expect(te2.config).toEqual(te.config);
    await sameParams(te2, te);
    te.dispose();
    te2.dispose();
  });

  it('saveWeights / loadWeights move any module\'s named tensors, strictly unless told otherwise', async () => {
    const shapes = new Map<string, number[]>([['a.weight', [3, 2]], ['a.bias', [3]], ['b.0.scale', [1]]]);
    const src = new ShapeModule(shapes);
    const gen = new Generator(9);
    for (const p of src.parameters()) p.write(gen.normalArray(p.size));
    const file = path.join(dir, 'named.safetensors');
    await saveWeights(src, file, { metadata: { note: 'test' } });
    const dst = new ShapeModule(shapes);
    const r = await loadWeights(dst, file);
    expect(r.loaded).toBe(3);
    await sameParams(dst, src);
    const smaller = new ShapeModule(new Map([['a.weight', [3, 2]], ['a.bias', [3]]]));
    await expect(loadWeights(smaller, file)).rejects.toThrow(/unexpected keys: b\.0\.scale/);
    expect((await loadWeights(smaller, file, { strict: false })).unexpected).toEqual(['b.0.scale']);
    const f = await SafetensorsFile.open(file);
    expect(f.metadata).toEqual({ format: 'pt', note: 'test' });
    await f.close();
    for (const m of [src, dst, smaller]) m.dispose();
  });
});

describe('StableDiffusionPipeline.fromPretrained', () => {
  it('loads a diffusers folder through the same route; a broken component frees the models loaded before it', async () => {
    const pipe = await StableDiffusionPipeline.fromPretrained(makeSdFolder(path.join(dir, 'sd'), GOLDEN));
    expect(pipe.unet).toBeInstanceOf(UNet2DConditionModel);
    expect(pipe.sampleSize).toBe(unetConfig.sample_size);
    const r = await pipe.generate({ prompt: 'a cat', numInferenceSteps: 2, outputType: 'latent' });
    expect(r.latents.shape).toEqual([1, 4, unetConfig.sample_size, unetConfig.sample_size]);
    expect(relL2(await r.latents.toArray(), new Float32Array(r.latents.size))).toBeGreaterThan(0);
    for (const t of [r.latents, r.promptEmbeds, r.negativePromptEmbeds]) t?.dispose();
    pipe.dispose();

    const broken = makeSdFolder(path.join(dir, 'sd-broken'), GOLDEN, ['vae']);
    fs.writeFileSync(path.join(broken, 'vae/weights.safetensors'), Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 34, 120, 34, 58, 123, 125, 125]));
    const before = await inUse();
    await expect(StableDiffusionPipeline.fromPretrained(broken)).rejects.toThrow(/vae[\\/]weights\.safetensors/);
    expect(await inUse()).toBe(before);
  });
});
