import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DiffusersError,
  MappedWeights,
  ShardedSafetensors,
  StateDictError,
  assertStateDict,
  checkStateDict,
  keyOptionsFor,
  loadStateDict,
  openDiffusersModel,
  vaeLegacyRename,
  type Loadable,
} from '../src/io/diffusers.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import type { StateDictReader } from '../src/nn/module.js';

const GOLDEN = path.resolve(__dirname, 'fixtures/golden');
let dir: string;
const manifest = JSON.parse(fs.readFileSync(path.join(GOLDEN, 'manifest.json'), 'utf8'));
const legacyMap = manifest.sections.vae.legacy_attention_keys.legacy_to_current as Record<string, string>;

beforeAll(() => {
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

describe('state dict checking', () => {
  it('the golden text encoder weights match their own key set; position_ids is accepted and ignored', async () => {
    const file = path.join(GOLDEN, 'text_encoder/weights.safetensors');
    const expected = await shapesOf(file, (k) => k.endsWith('position_ids'));
    expect(expected.size).toBe(manifest.sections.text_encoder.weights_keys - 1);
    const f = await SafetensorsFile.open(file);
    const r = assertStateDict(expected, f);
    expect(r).toEqual({ missing: [], unexpected: [], wrongShape: [], ignored: ['text_model.embeddings.position_ids'] });
    await f.close();
  });

  it('names missing, unexpected and wrong-shaped keys in a StateDictError', async () => {
    const file = path.join(GOLDEN, 'unet/weights.safetensors');
    const expected = new Map(await shapesOf(file));
    const [k0, k1] = [...expected.keys()];
    expected.delete(k0); // → unexpected
    expected.set('up_blocks.9.extra.weight', [3, 3]); // → missing
    expected.set(k1, [...expected.get(k1)!, 2]); // → wrong shape
    const f = await SafetensorsFile.open(file);
    const r = checkStateDict(expected, f);
    expect(r.missing).toEqual(['up_blocks.9.extra.weight']);
    expect(r.unexpected).toEqual([k0]);
    expect(r.wrongShape).toEqual([{ key: k1, expected: [...f.info(k1).shape, 2], got: [...f.info(k1).shape] }]);
    let err: unknown;
    try {
      assertStateDict(expected, f);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDictError);
    const msg = (err as Error).message;
    expect(msg).toContain('up_blocks.9.extra.weight');
    expect(msg).toContain(k0);
    expect(msg).toContain(k1);
    expect(msg).toContain(file);
    expect(msg).not.toContain('\n');
    await f.close();
  });

  it('VAE legacy attention names (query/key/value/proj_attn) map to to_q/to_k/to_v/to_out.0 as the manifest says', async () => {
    for (const [legacy, current] of Object.entries(legacyMap)) expect(vaeLegacyRename(legacy)).toBe(current);
    expect(vaeLegacyRename('encoder.down_blocks.0.resnets.0.conv1.weight')).toBe('encoder.down_blocks.0.resnets.0.conv1.weight');

    // weights.safetensors without the current attention tensors + legacy_attention_keys.safetensors = a legacy checkpoint.
    const current = path.join(GOLDEN, 'vae/weights.safetensors');
    const legacy = path.join(GOLDEN, 'vae/legacy_attention_keys.safetensors');
    const expected = await shapesOf(current);
    const currentNames = new Set(Object.values(legacyMap));
    const merged = path.join(dir, 'vae_legacy.safetensors');
    const a = await SafetensorsFile.open(current);
    const b = await SafetensorsFile.open(legacy);
    const out: Record<string, TensorToWrite> = {};
    for (const k of a.keys()) if (!currentNames.has(k)) out[k] = { dtype: 'F32', shape: a.info(k).shape, data: await a.readF32(k) };
    for (const k of b.keys()) out[k] = { dtype: 'F32', shape: b.info(k).shape, data: await b.readF32(k) };
    await writeSafetensors(merged, out);
    const m = await SafetensorsFile.open(merged);

    // Without the rename: every legacy key is unexpected, every current one missing.
    const plain = checkStateDict(expected, m);
    expect(plain.missing.sort()).toEqual([...currentNames].sort());
    expect(plain.unexpected.sort()).toEqual(Object.keys(legacyMap).sort());
    // With the VAE options: a clean match, and the values are the current tensors'.
    expect(checkStateDict(expected, m, keyOptionsFor('vae'))).toEqual({ missing: [], unexpected: [], wrongShape: [], ignored: [] });
    const view = new MappedWeights(m, keyOptionsFor('vae'), expected);
    for (const [lk, ck] of Object.entries(legacyMap)) {
      expect(view.sourceKey(ck)).toBe(lk);
      expect(Array.from(await view.readF32(ck))).toEqual(Array.from(await a.readF32(ck)));
    }
    // A file holding both names for one tensor reports the duplicate.
    const both = path.join(dir, 'vae_both.safetensors');
    await writeSafetensors(both, { ...out, 'encoder.mid_block.attentions.0.to_q.bias': { dtype: 'F32', shape: [32], data: await a.readF32('encoder.mid_block.attentions.0.to_q.bias') } });
    const bf = await SafetensorsFile.open(both);
    expect(checkStateDict(expected, bf, keyOptionsFor('vae')).unexpected).toEqual([
      'encoder.mid_block.attentions.0.to_q.bias (duplicate of encoder.mid_block.attentions.0.to_q.bias)',
    ]);
    await Promise.all([a.close(), b.close(), m.close(), bf.close()]);
  });

  it('accepts [o, i, 1, 1] conv attention weights for Linear [o, i] in the VAE (old checkpoints)', async () => {
    const src = path.join(GOLDEN, 'vae/weights.safetensors');
    const expected = await shapesOf(src);
    const conv = path.join(dir, 'vae_conv.safetensors');
    await rewrite(src, conv, (k, shape) => ({
      key: k.replace('.to_q.', '.query.').replace('.to_out.0.', '.proj_attn.'),
      shape: /attentions\.0\.to_(q|k|v|out\.0)\.weight$/.test(k) ? [...shape, 1, 1] : shape,
    }));
    const f = await SafetensorsFile.open(conv);
    expect(checkStateDict(expected, f).wrongShape.length + checkStateDict(expected, f).missing.length).toBeGreaterThan(0);
    expect(checkStateDict(expected, f, keyOptionsFor('vae'))).toEqual({ missing: [], unexpected: [], wrongShape: [], ignored: [] });
    expect(checkStateDict(expected, f, { rename: vaeLegacyRename }).wrongShape.map((w) => w.key).sort()).toEqual(
      ['decoder', 'encoder'].flatMap((p) => ['to_k', 'to_out.0', 'to_q', 'to_v'].map((n) => `${p}.mid_block.attentions.0.${n}.weight`)).sort(),
    );
    await f.close();
  });

  it('loadStateDict drives a module-like target through the mapped view', async () => {
    const file = path.join(GOLDEN, 'text_encoder/weights.safetensors');
    const expected = await shapesOf(file, (k) => k.endsWith('position_ids'));
    const got = new Map<string, Float32Array>();
    const target: Loadable = {
      stateDict: () => new Map([...expected].map(([k, shape]) => [k, { shape }])),
      async loadStateDict(src: StateDictReader) {
        for (const k of src.keys()) got.set(k, await src.readF32(k));
        return { missing: [], unexpected: [], ignored: [], loaded: got.size };
      },
    };
    const f = await SafetensorsFile.open(file);
    const r = await loadStateDict(target, f);
    expect(r.loaded).toBe(expected.size);
    expect(r.ignored).toEqual(['text_model.embeddings.position_ids']);
    expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
    // A target that needs a key the file lacks fails before anything is read.
    got.clear();
    const short: Loadable = { ...target, stateDict: () => new Map([...target.stateDict(), ['text_model.extra.weight', { shape: [1] }]]) };
    await expect(loadStateDict(short, f)).rejects.toThrow(/missing keys: text_model\.extra\.weight/);
    expect(got.size).toBe(0);
    await f.close();
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
    expect(checkStateDict(await shapesOf(src), s)).toEqual({ missing: [], unexpected: [], wrongShape: [], ignored: [] });
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
    await expect(openDiffusersModel(root)).rejects.toThrow(/component 'vae': only 'diffusion_pytorch_model.bin'/);
    await expect(openDiffusersModel(root, { components: ['unet', 'controlnet'] })).rejects.toThrow(/no component 'controlnet'/);
    fs.writeFileSync(path.join(root, 'unet/config.json'), '{ not json');
    await expect(openDiffusersModel(root, { components: ['unet'] })).rejects.toThrow(/unet[\\/]config\.json' is not valid JSON/);
    fs.rmSync(path.join(root, 'text_encoder'), { recursive: true });
    await expect(openDiffusersModel(root, { components: ['text_encoder'] })).rejects.toThrow(/component 'text_encoder' \(listed in model_index.json\): folder .* is missing/);
  });
});
