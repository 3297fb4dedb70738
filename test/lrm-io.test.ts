// LRM folders: save / fromPretrained round trip, atomic overwrite, strict heads, and fromDiffusers from a diffusers
// folder (up-path keys skipped by name, anything else missing is an error) or from loaded components (copied).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tensor } from '../src/tensor/tensor.js';
import { Generator } from '../src/tensor/random.js';
import { readSafetensorsSync, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { findAsset, VOCAB_FILE } from '../src/io/tokenizer.js';
import { StateDictError } from '../src/nn/state_dict.js';
import { LatentRewardModel } from '../src/lrm/model.js';
import { relL2, setupGpu } from './helpers.js';
import { tinyBase, tinyLrm } from './lrm-tiny.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lpo-lrm-io-'));

beforeAll(async () => {
  await setupGpu();
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function scoresOf(m: LatentRewardModel): Promise<Float32Array> {
  const x = Tensor.randn([3, 4, 8, 8], new Generator(21));
  const s = m.score(x, [1, 501, 951], ['a red cube', 'a blue ball', 'a red cube']);
  const v = await s.toArray();
  s.dispose();
  x.dispose();
  return v;
}

/** A diffusers SD folder of the tiny base (no VAE needed by the LRM). */
async function diffusersFolder(dir: string): Promise<void> {
  const base = tinyBase(9);
  await base.unet.savePretrained(path.join(dir, 'unet'));
  await base.textEncoder.savePretrained(path.join(dir, 'text_encoder'));
  fs.mkdirSync(path.join(dir, 'tokenizer'), { recursive: true });
  fs.copyFileSync(findAsset(VOCAB_FILE)!, path.join(dir, 'tokenizer', VOCAB_FILE));
  fs.mkdirSync(path.join(dir, 'scheduler'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'scheduler', 'scheduler_config.json'), JSON.stringify({ _class_name: 'DDIMScheduler', beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, num_train_timesteps: 1000 }));
  fs.writeFileSync(path.join(dir, 'model_index.json'), JSON.stringify({
    _class_name: 'StableDiffusionPipeline', unet: ['diffusers', 'UNet2DConditionModel'], text_encoder: ['transformers', 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'], scheduler: ['diffusers', 'DDIMScheduler'],
  }));
  base.unet.dispose();
  base.textEncoder.dispose();
}

describe('LRM folders', () => {
  it('save → fromPretrained gives the same parameters and scores; saving again replaces the folder atomically', async () => {
    const m = tinyLrm(2, { vfeWeight: 5 });
    m.logitScale.write([3.1]);
    const dir = path.join(tmp, 'lrm');
    await m.save(dir);
    for (const f of ['config.json', 'heads.safetensors', 'unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', `tokenizer/${VOCAB_FILE}`]) {
      expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
    }
    // The saved U-Net holds the down and mid blocks only.
    const unetKeys = Object.keys(readSafetensorsSync(path.join(dir, 'unet/diffusion_pytorch_model.safetensors')).tensors);
    expect(unetKeys.some((k) => k.startsWith('mid_block.'))).toBe(true);
    expect(unetKeys.filter((k) => /^(up_blocks|conv_norm_out|conv_out)\./.test(k))).toEqual([]);
    const back = await LatentRewardModel.fromPretrained(dir);
    expect(back.config).toEqual(m.config);
    const a = m.stateDict();
    for (const [k, p] of back.stateDict()) expect(relL2(await p.toArray(), await a.get(k)!.toArray()), k).toBe(0);
    expect([...back.stateDict().keys()].sort()).toEqual([...a.keys()].sort());
    expect(relL2(await scoresOf(back), await scoresOf(m))).toBe(0);

    m.logitScale.write([1.5]);
    await m.save(dir);
    expect(fs.readdirSync(tmp).filter((n) => n.startsWith('lrm.'))).toEqual([]);
    const again = await LatentRewardModel.fromPretrained(dir);
    expect(await again.logitScale.item()).toBeCloseTo(1.5, 6);
    for (const x of [m, back, again]) x.dispose();
  });

  it('heads.safetensors must hold exactly the three heads', async () => {
    const m = tinyLrm(2);
    const dir = path.join(tmp, 'lrm-bad');
    await m.save(dir);
    const heads = path.join(dir, 'heads.safetensors');
    const t = readSafetensorsSync(heads).tensors;
    const out: Record<string, TensorToWrite> = {};
    for (const [k, v] of Object.entries(t)) if (k !== 'logit_scale') out[k] = { dtype: 'F32', shape: v.shape, data: Float32Array.from(v.data) };
    out.extra = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    await writeSafetensors(heads, out);
    await expect(LatentRewardModel.fromPretrained(dir)).rejects.toThrow(StateDictError);
    await expect(LatentRewardModel.fromPretrained(dir)).rejects.toThrow(/missing keys: logit_scale.*unexpected keys: extra/);
    m.dispose();
  });

  it('fromDiffusers: a full diffusers U-Net loads into the truncated one (up path skipped), equal to the copy from loaded components', async () => {
    const dir = path.join(tmp, 'sd');
    await diffusersFolder(dir);
    const fromFolder = await LatentRewardModel.fromDiffusers(dir, { seed: 3 });
    expect(fromFolder.unet.hasUpBlocks).toBe(false);
    expect(fromFolder.baseModel).toBe(path.resolve(dir));
    expect(fromFolder.schedulerConfig?.beta_schedule).toBe('scaled_linear');
    expect(fromFolder.config.projectionDim).toBe(16);
    expect(await fromFolder.logitScale.item()).toBeCloseTo(2.6592, 6); // the reference's logit_scale_init_value (≈ ln(1/0.07))
    const base = tinyBase(9);
    const fromParts = await LatentRewardModel.fromDiffusers(base, { seed: 3 });
    // The components were copied: disposing the base leaves the LRM working.
    base.unet.dispose();
    base.textEncoder.dispose();
    expect(relL2(await scoresOf(fromFolder), await scoresOf(fromParts))).toBe(0);
    for (const x of [fromFolder, fromParts]) x.dispose();
  });

  it('fromDiffusers: a U-Net file missing a down/mid key is an error naming it; an unknown key too', async () => {
    const dir = path.join(tmp, 'sd-broken');
    await diffusersFolder(dir);
    const file = path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors');
    const t = readSafetensorsSync(file).tensors;
    const out: Record<string, TensorToWrite> = {};
    for (const [k, v] of Object.entries(t)) if (k !== 'mid_block.resnets.0.conv1.bias') out[k] = { dtype: 'F32', shape: v.shape, data: Float32Array.from(v.data) };
    await writeSafetensors(file, out);
    await expect(LatentRewardModel.fromDiffusers(dir)).rejects.toThrow(/missing keys: mid_block\.resnets\.0\.conv1\.bias/);
    out['mid_block.resnets.0.conv1.bias'] = { dtype: 'F32', shape: [16], data: new Float32Array(16) };
    out['up_blockz.0.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    await writeSafetensors(file, out);
    await expect(LatentRewardModel.fromDiffusers(dir)).rejects.toThrow(/unexpected keys: up_blockz\.0\.weight/);
  });

  it('text_projection starts from a CLIP checkpoint when given', async () => {
    const dir = path.join(tmp, 'sd-clip');
    await diffusersFolder(dir);
    const w = Float32Array.from({ length: 12 * 16 }, (_, i) => Math.sin(i));
    const file = path.join(tmp, 'clip.safetensors');
    await writeSafetensors(file, { 'text_projection.weight': { dtype: 'F32', shape: [12, 16], data: w }, 'visual_projection.weight': { dtype: 'F32', shape: [12, 4], data: new Float32Array(48) } });
    const m = await LatentRewardModel.fromDiffusers(dir, { clipTextProjection: file });
    expect(m.config.projectionDim).toBe(12);
    expect(relL2(await m.textProjection.weight.toArray(), w)).toBe(0);
    m.dispose();
  });
});
