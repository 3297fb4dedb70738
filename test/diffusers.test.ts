import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupGpu } from './helpers.js';
import { ShapeModule } from './ref/shape_module.js';
import { openDiffusersModel } from '../src/io/diffusers.js';
import { DiffusersError, ShardedSafetensors } from '../src/io/weights.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { Module, StateDictError } from '../src/nn/module.js';
import { CLIPTextModel } from '../src/nn/clip.js';
import { AutoencoderKL, vaeLegacyRename } from '../src/nn/vae.js';

const GOLDEN = path.resolve(__dirname, 'fixtures/golden');
let dir: string;
const manifest = JSON.parse(fs.readFileSync(path.join(GOLDEN, 'manifest.json'), 'utf8'));
const legacyMap = manifest.sections.vae.legacy_attention_keys.legacy_to_current as Record<string, string>;
const vaeConfig = JSON.parse(fs.readFileSync(path.join(GOLDEN, 'vae/config.json'), 'utf8'));
const clean = { missing: [], unexpected: [], wrongShape: [], ignored: [] };

beforeAll(async () => {
  await setupGpu();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lpo-diff-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A file's keys and shapes, as a model would expect them. */
async function shapesOf(file: string, drop: (k: string) => boolean = () => false): Promise<Map<string, readonly number[]>> {
  const f = await SafetensorsFile.open(file);
  const m = new Map(f.keys().filter((k) => !drop(k)).map((k) => [k, f.info(k).shape] as const));
  await f.close();
  return m;
}

/** Copies selected tensors of a file (renamed / reshaped) into a new file. */
async function rewrite(src: string, dst: string, edit: (k: string, shape: readonly number[]) => { key: string; shape: readonly number[] } | null): Promise<void> {
  const f = await SafetensorsFile.open(src);
  const out: Record<string, TensorToWrite> = {};
  for (const k of f.keys()) {
    const info = f.info(k);
    const e = edit(k, info.shape);
    if (!e) continue;
    out[e.key] = { dtype: info.dtype as 'F32' | 'I64', shape: e.shape, data: await f.readBytes(k), raw: true };
  }
  await f.close();
  await writeSafetensors(dst, out, { format: 'pt' });
}

/** weights.safetensors without the current attention tensors + legacy_attention_keys.safetensors = a legacy checkpoint. */
async function legacyVae(extra: Record<string, TensorToWrite> = {}, name = 'vae_legacy.safetensors'): Promise<string> {
  const a = await SafetensorsFile.open(path.join(GOLDEN, 'vae/weights.safetensors'));
  const b = await SafetensorsFile.open(path.join(GOLDEN, 'vae/legacy_attention_keys.safetensors'));
  const currentNames = new Set(Object.values(legacyMap));
  const out: Record<string, TensorToWrite> = {};
  for (const k of a.keys()) if (!currentNames.has(k)) out[k] = { dtype: 'F32', shape: a.info(k).shape, data: await a.readF32(k) };
  for (const k of b.keys()) out[k] = { dtype: 'F32', shape: b.info(k).shape, data: await b.readF32(k) };
  const file = path.join(dir, name);
  await writeSafetensors(file, { ...out, ...extra });
  await Promise.all([a.close(), b.close()]);
  return file;
}

describe('state dict checking (Module.checkStateDict / loadStateDict, one report)', () => {
  it('the golden text encoder matches its checkpoint; position_ids, declared by CLIP, is accepted and ignored', async () => {
    const file = await SafetensorsFile.open(path.join(GOLDEN, 'text_encoder/weights.safetensors'));
    const m = CLIPTextModel.fromConfig(JSON.parse(fs.readFileSync(path.join(GOLDEN, 'text_encoder/config.json'), 'utf8')));
    expect(m.namedParameters().length).toBe(manifest.sections.text_encoder.weights_keys - 1);
    expect(m.checkStateDict(file)).toEqual({ ...clean, ignored: ['text_model.embeddings.position_ids'] });
    // A module that declares nothing reports the same key as unexpected.
    const plain = new ShapeModule(await shapesOf(path.join(GOLDEN, 'text_encoder/weights.safetensors'), (k) => k.endsWith('position_ids')));
    expect(plain.checkStateDict(file)).toEqual({ ...clean, unexpected: ['text_model.embeddings.position_ids'] });
    m.dispose();
    plain.dispose();
    await file.close();
  });

  it('names missing, unexpected and wrong-shaped keys (and the file) in one StateDictError, before writing anything', async () => {
    const file = path.join(GOLDEN, 'unet/weights.safetensors');
    const expected = new Map(await shapesOf(file));
    const [k0, k1] = [...expected.keys()];
    expected.delete(k0); // → unexpected
    expected.set('up_blocks.9.extra.weight', [3, 3]); // → missing
    expected.set(k1, [...expected.get(k1)!, 2]); // → wrong shape
    const f = await SafetensorsFile.open(file);
    const m = new ShapeModule(expected);
    const r = m.checkStateDict(f);
    expect(r.missing).toEqual(['up_blocks.9.extra.weight']);
    expect(r.unexpected).toEqual([k0]);
    expect(r.wrongShape).toEqual([{ key: k1, expected: [...f.info(k1).shape, 2], got: [...f.info(k1).shape] }]);
    const err = await m.loadStateDict(f).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateDictError);
    const e = err as StateDictError;
    expect([e.missing, e.unexpected, e.wrongShape]).toEqual([r.missing, r.unexpected, r.wrongShape]);
    for (const s of ['up_blocks.9.extra.weight', k0, k1, file]) expect(e.message).toContain(s);
    expect(e.message).not.toContain('\n');
    // Nothing was written: the parameters are still zero.
    const [, p] = m.namedParameters().find(([k]) => k !== k1)!;
    expect((await p.toArray()).every((v) => v === 0)).toBe(true);
    m.dispose();
    await f.close();
  });

  it('the VAE declares its legacy attention names (query/key/value/proj_attn → to_q/to_k/to_v/to_out.0), as the manifest maps them', async () => {
    for (const [legacy, current] of Object.entries(legacyMap)) expect(vaeLegacyRename(legacy)).toBe(current);
    expect(vaeLegacyRename('encoder.down_blocks.0.resnets.0.conv1.weight')).toBe('encoder.down_blocks.0.resnets.0.conv1.weight');
    const m = await SafetensorsFile.open(await legacyVae());
    const current = await SafetensorsFile.open(path.join(GOLDEN, 'vae/weights.safetensors'));
    // Without the declaration: every legacy key is unexpected, every current one missing.
    const plain = new ShapeModule(await shapesOf(path.join(GOLDEN, 'vae/weights.safetensors')));
    const r = plain.checkStateDict(m);
    expect(r.missing.sort()).toEqual(Object.values(legacyMap).sort());
    expect(r.unexpected.sort()).toEqual(Object.keys(legacyMap).sort());
    // AutoencoderKL: a clean match, and the loaded values are the current tensors'.
    const vae = new AutoencoderKL(vaeConfig);
    expect(vae.checkStateDict(m)).toEqual(clean);
    const rep = await vae.loadStateDict(m);
    expect(rep.loaded).toBe(manifest.sections.vae.weights_keys);
    const params = vae.stateDict();
    for (const ck of Object.values(legacyMap)) expect(Array.from(await params.get(ck)!.toArray())).toEqual(Array.from(await current.readF32(ck)));
    // A file holding both names of one tensor reports the duplicate.
    const q = 'encoder.mid_block.attentions.0.to_q.bias';
    const both = await SafetensorsFile.open(await legacyVae({ [q]: { dtype: 'F32', shape: [32], data: await current.readF32(q) } }, 'vae_both.safetensors'));
    expect(vae.checkStateDict(both).unexpected).toEqual([`${q} (duplicate of ${q})`]);
    vae.dispose();
    plain.dispose();
    await Promise.all([m.close(), current.close(), both.close()]);
  });

  it('the VAE accepts [o, i, 1, 1] conv attention weights for its Linear [o, i] (old checkpoints)', async () => {
    const src = path.join(GOLDEN, 'vae/weights.safetensors');
    const conv = path.join(dir, 'vae_conv.safetensors');
    await rewrite(src, conv, (k, shape) => ({
      key: k.replace('.to_q.', '.query.').replace('.to_out.0.', '.proj_attn.'),
      shape: /attentions\.0\.to_(q|k|v|out\.0)\.weight$/.test(k) ? [...shape, 1, 1] : shape,
    }));
    const f = await SafetensorsFile.open(conv);
    const vae = new AutoencoderKL(vaeConfig);
    expect(vae.checkStateDict(f)).toEqual(clean);
    // The rename alone (no squeeze declared) leaves the four projections of each attention wrong-shaped.
    const renameOnly = new ShapeModule(await shapesOf(src), { rename: vaeLegacyRename });
    expect(renameOnly.checkStateDict(f).wrongShape.map((w) => w.key).sort()).toEqual(
      ['decoder', 'encoder'].flatMap((p) => ['to_k', 'to_out.0', 'to_q', 'to_v'].map((n) => `${p}.mid_block.attentions.0.${n}.weight`)).sort(),
    );
    await vae.loadStateDict(f);
    const w = 'decoder.mid_block.attentions.0.to_q.weight';
    expect(Array.from(await vae.stateDict().get(w)!.toArray())).toEqual(Array.from(await f.readF32(w.replace('.to_q.', '.query.'))));
    vae.dispose();
    renameOnly.dispose();
    await f.close();
  });

  it("declarations apply under the declaring module's prefix: a model holding a VAE and a text encoder inherits their rules", async () => {
    class Composite extends Module {
      constructor() {
        super();
        this.registerModule('vae', new AutoencoderKL(vaeConfig));
        this.registerModule('text_encoder', CLIPTextModel.fromConfig(JSON.parse(fs.readFileSync(path.join(GOLDEN, 'text_encoder/config.json'), 'utf8'))));
      }
    }
    const m = new Composite();
    const vaeFile = await SafetensorsFile.open(await legacyVae());
    const te = await SafetensorsFile.open(path.join(GOLDEN, 'text_encoder/weights.safetensors'));
    const merged: Record<string, TensorToWrite> = {};
    for (const [prefix, f] of [['vae', vaeFile], ['text_encoder', te]] as const) {
      for (const k of f.keys()) merged[`${prefix}.${k}`] = { dtype: f.info(k).dtype as 'F32', shape: f.info(k).shape, data: await f.readBytes(k), raw: true };
    }
    const file = path.join(dir, 'composite.safetensors');
    await writeSafetensors(file, merged);
    const f = await SafetensorsFile.open(file);
    expect(m.checkStateDict(f)).toEqual({ ...clean, ignored: ['text_encoder.text_model.embeddings.position_ids'] });
    // The VAE's rename does not reach keys outside `vae.`.
    const stray = 'text_encoder.mid_block.attentions.0.query.weight';
    expect(m.checkStateDict({ keys: () => [stray], info: () => ({ shape: [1] }), readF32: () => new Float32Array(1) }).unexpected).toEqual([stray]);
    m.dispose();
    await Promise.all([vaeFile.close(), te.close(), f.close()]);
  });
});

describe('sharded weights', () => {
  it('reads a *.safetensors.index.json as one file', async () => {
    const sub = path.join(dir, 'sharded');
    fs.mkdirSync(sub);
    const src = path.join(GOLDEN, 'vae/weights.safetensors');
    const keys = (await shapesOf(src)).keys();
    const all = [...keys];
    const half = new Set(all.slice(0, 50));
    await rewrite(src, path.join(sub, 'diffusion_pytorch_model-00001-of-00002.safetensors'), (k, shape) => (half.has(k) ? { key: k, shape } : null));
    await rewrite(src, path.join(sub, 'diffusion_pytorch_model-00002-of-00002.safetensors'), (k, shape) => (half.has(k) ? null : { key: k, shape }));
    const weightMap = Object.fromEntries(all.map((k) => [k, `diffusion_pytorch_model-0000${half.has(k) ? 1 : 2}-of-00002.safetensors`]));
    const idx = path.join(sub, 'diffusion_pytorch_model.safetensors.index.json');
    fs.writeFileSync(idx, JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap }));
    const s = await ShardedSafetensors.open(idx);
    expect(s.keys().sort()).toEqual(all.sort());
    const g = await SafetensorsFile.open(src);
    expect(Array.from(await s.readF32(all[70]))).toEqual(Array.from(await g.readF32(all[70])));
    const m = new ShapeModule(await shapesOf(src));
    expect(m.checkStateDict(s)).toEqual(clean);
    m.dispose();
    await s.close();
    await g.close();
    // An index that lists a key the shard lacks is an error naming both.
    fs.writeFileSync(idx, JSON.stringify({ weight_map: { ...weightMap, 'ghost.weight': 'diffusion_pytorch_model-00001-of-00002.safetensors' } }));
    await expect(ShardedSafetensors.open(idx)).rejects.toThrow(/tensor "ghost.weight": listed in .* but not in this shard/);
  });
});

describe('diffusers model folders', () => {
  async function makeModel(root: string, opts: { fp16?: boolean; skipVaeWeights?: boolean } = {}): Promise<void> {
    const cp = (from: string, to: string) => {
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(from, to);
    };
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(
      path.join(root, 'model_index.json'),
      JSON.stringify({
        _class_name: 'StableDiffusionPipeline',
        _diffusers_version: '0.27.2',
        unet: ['diffusers', 'UNet2DConditionModel'],
        text_encoder: ['transformers', 'CLIPTextModel'],
        vae: ['diffusers', 'AutoencoderKL'],
        tokenizer: ['transformers', 'CLIPTokenizer'],
        scheduler: ['diffusers', 'DDIMScheduler'],
        safety_checker: [null, null],
        feature_extractor: [null, null],
      }),
    );
    cp(path.join(GOLDEN, 'unet/config.json'), path.join(root, 'unet/config.json'));
    cp(path.join(GOLDEN, 'unet/weights.safetensors'), path.join(root, 'unet/diffusion_pytorch_model.safetensors'));
    if (opts.fp16) {
      // the fp16 variant: the same weights re-encoded as F16
      const f = await SafetensorsFile.open(path.join(GOLDEN, 'unet/weights.safetensors'));
      const out: Record<string, TensorToWrite> = {};
      for (const k of f.keys()) out[k] = { dtype: 'F16', shape: f.info(k).shape, data: await f.readF32(k) };
      await f.close();
      await writeSafetensors(path.join(root, 'unet/diffusion_pytorch_model.fp16.safetensors'), out);
    }
    cp(path.join(GOLDEN, 'text_encoder/config.json'), path.join(root, 'text_encoder/config.json'));
    cp(path.join(GOLDEN, 'text_encoder/weights.safetensors'), path.join(root, 'text_encoder/model.safetensors'));
    cp(path.join(GOLDEN, 'vae/config.json'), path.join(root, 'vae/config.json'));
    if (!opts.skipVaeWeights) cp(path.join(GOLDEN, 'vae/weights.safetensors'), path.join(root, 'vae/diffusion_pytorch_model.safetensors'));
    else fs.writeFileSync(path.join(root, 'vae/diffusion_pytorch_model.bin'), 'pickle');
    cp(path.join(GOLDEN, 'ddim/scheduler_config.json'), path.join(root, 'scheduler/scheduler_config.json'));
    fs.mkdirSync(path.join(root, 'tokenizer'), { recursive: true });
    fs.writeFileSync(path.join(root, 'tokenizer/tokenizer_config.json'), '{"model_max_length": 77}');
    fs.writeFileSync(path.join(root, 'tokenizer/merges.txt'), '#version: 0.2\n');
  }

  it('opens configs and weights per component; fp16 variants on request', async () => {
    const root = path.join(dir, 'sd-tiny');
    await makeModel(root, { fp16: true });
    const m = await openDiffusersModel(root);
    expect([...m.components.keys()]).toEqual(['unet', 'text_encoder', 'vae', 'tokenizer', 'scheduler']);
    const unet = m.get('unet');
    expect(unet.className).toBe('UNet2DConditionModel');
    expect(unet.config?.cross_attention_dim).toBe(16);
    expect(unet.variant).toBeNull();
    expect(unet.weights?.info('conv_in.weight').dtype).toBe('F32');
    expect(m.get('text_encoder').weightsPath).toMatch(/model\.safetensors$/);
    expect(m.get('text_encoder').weights?.has('text_model.embeddings.position_ids')).toBe(true);
    expect(m.get('scheduler').config?._class_name).toBe('DDIMScheduler');
    expect(m.get('scheduler').weights).toBeNull();
    expect(m.get('tokenizer').files).toContain('merges.txt');
    expect(() => m.get('safety_checker')).toThrow(DiffusersError);
    await m.close();

    const h = await openDiffusersModel(root, { preferFp16: true, components: ['unet'] });
    const u16 = h.get('unet');
    expect(u16.variant).toBe('fp16');
    expect(u16.weights?.info('conv_in.weight').dtype).toBe('F16');
    const a = await u16.weights!.readF32('conv_in.weight');
    const g = await SafetensorsFile.open(path.join(GOLDEN, 'unet/weights.safetensors'));
    const b = await g.readF32('conv_in.weight');
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(Math.abs(b[i]) * 2 ** -11 + 2 ** -24);
    await g.close();
    await h.close();
  });

  it('reads the golden folder (no model_index.json) as a set of components', async () => {
    const m = await openDiffusersModel(GOLDEN);
    expect(m.index).toBeNull();
    for (const c of ['unet', 'text_encoder', 'vae', 'ddim']) expect(m.components.has(c)).toBe(true);
    expect(m.get('unet').weightsPath).toMatch(/weights\.safetensors$/);
    expect(m.get('ddim').configPath).toMatch(/scheduler_config\.json$/);
    await m.close();
  });

  it('names what is missing', async () => {
    await expect(openDiffusersModel(path.join(dir, 'nowhere'))).rejects.toThrow(/does not exist/);
    const root = path.join(dir, 'sd-pickle');
    await makeModel(root, { skipVaeWeights: true });
    await expect(openDiffusersModel(root)).rejects.toThrow(/vae': only 'diffusion_pytorch_model.bin' \(a PyTorch pickle\)/);
    await expect(openDiffusersModel(root, { components: ['unet', 'controlnet'] })).rejects.toThrow(/no component 'controlnet'/);
    fs.writeFileSync(path.join(root, 'unet/config.json'), '{ not json');
    await expect(openDiffusersModel(root, { components: ['unet'] })).rejects.toThrow(/unet[\\/]config\.json': not valid JSON/);
    fs.rmSync(path.join(root, 'text_encoder'), { recursive: true });
    await expect(openDiffusersModel(root, { components: ['text_encoder'] })).rejects.toThrow(/text_encoder': component 'text_encoder' \(listed in model_index.json\): folder is missing/);
  });
});
