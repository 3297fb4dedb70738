// Fuzz targets for the weight-like files: safetensors, LoRA files, checkpoint folders, config.json files and
// the LPO trainer's state.json. See test/fuzz-harness.ts for what a case must do.
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { anyJson, mutatedBytes, notUtf8, type FuzzTarget } from './fuzz-harness.js';
import { SafetensorsFile, serializeSafetensors, type TensorToWrite, type WritableDType } from '../src/io/safetensors.js';
import { CheckpointStore, verifyCheckpoint } from '../src/io/checkpoint/index.js';
import { DDIMScheduler } from '../src/diffusion/ddim.js';
import { readJson } from '../src/io/weights.js';
import { parseLrmConfig } from '../src/lrm/config.js';
import { readTrainerState } from '../src/lpo/checkpoint.js';
import { Module } from '../src/nn/module.js';
import { Linear } from '../src/nn/linear.js';
import { addLoRA } from '../src/nn/lora.js';
import { loadLoRA, saveLoRA } from '../src/io/lora.js';
import { CLIPTextModel } from '../src/nn/clip.js';
import { StateDictError } from '../src/nn/state_dict.js';
import { LimitError } from '../src/gpu/errors.js';
import { fromPretrained, savePretrained } from '../src/io/pretrained.js';
import { Generator } from '../src/tensor/random.js';
import { TINY_CLIP } from './lrm-tiny.js';

const DTYPES: WritableDType[] = ['F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'];

const tensorArb: fc.Arbitrary<TensorToWrite> = fc.record({
  dtype: fc.constantFrom(...DTYPES),
  shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
}).map(({ dtype, shape }) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype, shape, data: Array.from({ length: n }, (_, i) => (dtype === 'BOOL' ? i & 1 : i % 4)) };
});

/** Splits a serialized file into its header object and data section. */
function splitFile(b: Uint8Array): { header: Record<string, any>; data: Uint8Array } {
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n))), data: b.subarray(8 + n) };
}

function joinFile(headerBytes: Uint8Array, data: Uint8Array, lenOverride?: bigint): Uint8Array {
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

const enc = (s: string) => new TextEncoder().encode(s);

/** Header edits that break one rule of the format each (or none, by chance). */
const headerEdit = fc.oneof(
  fc.record({ kind: fc.constant('dtype' as const), v: fc.oneof(fc.constantFrom('F8', 'Q4_0', '', 'f32', 'F32 ', 'I128', '__proto__'), anyJson) }),
  fc.record({ kind: fc.constant('shape' as const), v: fc.oneof(fc.array(fc.integer({ min: -3, max: 1 << 30 }), { maxLength: 5 }), anyJson, fc.constant([2 ** 53, 2 ** 53])) }),
  fc.record({ kind: fc.constant('offsets' as const), v: fc.oneof(fc.tuple(fc.integer({ min: -8, max: 400 }), fc.integer({ min: -8, max: 400 })), anyJson, fc.constant([0, 2 ** 60])) }),
  fc.record({ kind: fc.constant('drop' as const), v: fc.constantFrom('dtype', 'shape', 'data_offsets') }),
  fc.record({ kind: fc.constant('metadata' as const), v: anyJson }),
  fc.record({ kind: fc.constant('entry' as const), v: anyJson }),
  fc.record({ kind: fc.constant('duplicate' as const), v: fc.constant(null) }),
);

export const safetensorsTarget: FuzzTarget = {
  name: 'safetensors',
  setup(work) {
    const file = path.join(work, 'case.safetensors');
    const files = fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), tensorArb, { minKeys: 1, maxKeys: 4 })
      .filter((t) => !('__metadata__' in t))
      .map((t) => serializeSafetensors(t, { format: 'pt' }));
    const arb = files.chain((base) => fc.oneof(
      { weight: 3, arbitrary: mutatedBytes(base) },
      { weight: 1, arbitrary: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.integer({ min: -16, max: 16 }).map((d) => BigInt(Math.max(0, base.length - 8 + d)))).map((len) => {
        const { data } = splitFile(base);
        const hb = base.subarray(8, base.length - data.length);
        return joinFile(hb, data, len);
      }) },
      { weight: 4, arbitrary: fc.tuple(headerEdit, fc.nat()).map(([e, pick]) => {
        const { header, data } = splitFile(base);
        const keys = Object.keys(header).filter((k) => k !== '__metadata__');
        const k = keys[pick % keys.length];
        let text: string;
        if (e.kind === 'metadata') text = JSON.stringify({ ...header, __metadata__: e.v });
        else if (e.kind === 'duplicate') text = JSON.stringify(header).replace(/^\{/, `{${JSON.stringify(k)}:${JSON.stringify(header[k])},`);
        else {
          if (e.kind === 'entry') header[k] = e.v;
          else if (e.kind === 'drop') delete header[k][e.v];
          else header[k][e.kind === 'offsets' ? 'data_offsets' : e.kind] = e.v;
          text = JSON.stringify(header);
        }
        return joinFile(enc(text), data);
      }) },
      { weight: 1, arbitrary: fc.tuple(notUtf8, fc.nat()).map(([bad, at]) => {
        const { header, data } = splitFile(base);
        const h = enc(JSON.stringify(header));
        const i = 1 + (at % Math.max(1, h.length - 2));
        return joinFile(new Uint8Array([...h.subarray(0, i), ...bad, ...h.subarray(i)]), data);
      }) },
      { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((s) => joinFile(enc(s), splitFile(base).data)) },
    ));
    return {
      arb, names: 'case.safetensors',
      run(bytes: Uint8Array) {
        fs.writeFileSync(file, bytes);
        const f = SafetensorsFile.openSync(file);
        try {
          for (const k of f.keys()) f.readSync(k);
        } finally {
          f.closeSync();
        }
      },
    };
  },
};

/** A module with two Linear layers (LoRA targets `a` and `b`). */
class TwoLinear extends Module {
  readonly a = this.registerModule('a', new Linear(6, 5));
  readonly b = this.registerModule('b', new Linear(5, 3, { bias: false }));
}

export const loraTarget: FuzzTarget = {
  name: 'LoRA file',
  async setup(work) {
    const file = path.join(work, 'case.lora.safetensors');
    const model = new TwoLinear();
    addLoRA(model, { rank: 2, targets: ['a', 'b'], init: 'gaussian' });
    const good = path.join(work, 'good.safetensors');
    await saveLoRA(model, good);
    const base = new Uint8Array(fs.readFileSync(good));
    const { header, data } = splitFile(base);
    const keys = Object.keys(header).filter((k) => k !== '__metadata__');
    // Semantic edits: renamed or dropped keys, other shapes (with matching data), alpha metadata, extra entries.
    const semantic = fc.oneof(
      fc.tuple(fc.nat(), fc.constantFrom('unet.c.lora_A.weight', 'unet.a.lora.down.weight', 'text.a.lora_A.weight', 'unet.a.lora_B.weight', 'x')).map(([i, to]) => ({ rename: [keys[i % keys.length], to] as const })),
      fc.nat().map((i) => ({ drop: keys[i % keys.length] })),
      fc.tuple(fc.nat(), fc.array(fc.integer({ min: 0, max: 7 }), { maxLength: 3 })).map(([i, shape]) => ({ reshape: [keys[i % keys.length], shape] as const })),
      fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('0', '-1', 'NaN', 'Infinity', '1e400', '2', '4')).map((alpha) => ({ alpha })),
    ).map((edit) => {
      const tensors: Record<string, TensorToWrite> = {};
      for (const k of keys) {
        const [b0, b1] = header[k].data_offsets;
        tensors[k] = { dtype: 'F32', shape: header[k].shape, data: data.slice(b0, b1), raw: true };
      }
      const meta: Record<string, string> = { format: 'pt' };
      if ('rename' in edit) { tensors[edit.rename[1]] = tensors[edit.rename[0]]; if (edit.rename[1] !== edit.rename[0]) delete tensors[edit.rename[0]]; }
      if ('drop' in edit) delete tensors[edit.drop];
      if ('reshape' in edit) {
        const n = edit.reshape[1].reduce((a, b) => a * b, 1);
        tensors[edit.reshape[0]] = { dtype: 'F32', shape: edit.reshape[1], data: new Float32Array(n).fill(0.5) };
      }
      if ('alpha' in edit) meta.lora_alpha = edit.alpha;
      return serializeSafetensors(tensors, meta);
    });
    return {
      arb: fc.oneof({ weight: 1, arbitrary: mutatedBytes(base) }, { weight: 1, arbitrary: semantic }),
      names: 'case.lora.safetensors',
      async run(bytes: Uint8Array) {
        fs.writeFileSync(file, bytes);
        await loadLoRA(model, file);
      },
      dispose: () => model.dispose(),
    };
  },
};

export const checkpointTarget: FuzzTarget = {
  name: 'checkpoint',
  async setup(work) {
    const store = new CheckpointStore(path.join(work, 'store'));
    const dir = await store.save(1, (tmp) => {
      fs.writeFileSync(path.join(tmp, 'model.bin'), Buffer.alloc(300, 7));
      fs.writeFileSync(path.join(tmp, 'state.json'), '{"step":1}');
    }, { iteration: 1 });
    const files = ['manifest.json', 'model.bin', 'state.json'];
    const originals = Object.fromEntries(files.map((f) => [f, new Uint8Array(fs.readFileSync(path.join(dir, f)))]));
    const manifest = JSON.parse(new TextDecoder().decode(originals['manifest.json']));
    const manifestEdit = fc.tuple(fc.constantFrom('format', 'version', 'step', 'files', 'meta', 'files.model.bin', 'files.model.bin.bytes', 'files.model.bin.sha256', 'files.extra'), anyJson)
      .map(([field, v]) => {
        const m = structuredClone(manifest);
        if (field.startsWith('files.model.bin.')) m.files['model.bin'][field.slice(16)] = v;
        else if (field === 'files.model.bin') m.files['model.bin'] = v;
        else if (field === 'files.extra') m.files[typeof v === 'string' ? v : '../x'] = { bytes: 1, sha256: '0'.repeat(64) };
        else m[field] = v;
        return { file: 'manifest.json', bytes: enc(JSON.stringify(m)) };
      });
    const arb = fc.oneof(
      fc.constantFrom(...files).chain((f) => mutatedBytes(originals[f]).map((bytes) => ({ file: f, bytes }))),
      manifestEdit,
      fc.constantFrom(...files).map((f) => ({ file: f, bytes: null })),
    );
    return {
      arb, names: path.basename(dir),
      run(c: { file: string; bytes: Uint8Array | null }) {
        for (const f of files) fs.writeFileSync(path.join(dir, f), originals[f]);
        if (c.bytes) fs.writeFileSync(path.join(dir, c.file), c.bytes);
        else fs.rmSync(path.join(dir, c.file));
        verifyCheckpoint(dir);
      },
    };
  },
};

/** A JSON object with one field replaced, removed or added (or the text broken). */
function editedJson(base: Record<string, unknown>, extraKeys: readonly string[] = []): fc.Arbitrary<Uint8Array> {
  const keys = [...Object.keys(base), ...extraKeys];
  const text = enc(JSON.stringify(base));
  return fc.oneof(
    { weight: 4, arbitrary: fc.array(fc.tuple(fc.constantFrom(...keys), anyJson, fc.boolean()), { minLength: 1, maxLength: 3 }).map((edits) => {
      const o: Record<string, unknown> = structuredClone(base);
      for (const [k, v, remove] of edits) { if (remove) delete o[k]; else o[k] = v; }
      return enc(JSON.stringify(o));
    }) },
    { weight: 2, arbitrary: mutatedBytes(text) },
    { weight: 1, arbitrary: fc.constantFrom('', 'null', '[]', '"x"', '1', '{"a":', '\uFEFF{}').map(enc) },
  );
}

export const configTarget: FuzzTarget = {
  name: 'config.json',
  setup(work) {
    const dir = path.join(work, 'cfg');
    fs.mkdirSync(dir);
    const sched = JSON.parse(fs.readFileSync(path.resolve(__dirname, 'fixtures/golden/ddim/scheduler_config.json'), 'utf8'));
    const lrm = { _class_name: 'LatentRewardModel', format: 1, vfe_weight: 7.5, feature_indices: [1, 2], projection_dim: 8, logit_scale_init: 2.6, sample_size: 8, scaling_factor: 0.18215, null_prompt: '' };
    const arb = fc.oneof(editedJson(sched).map((b) => ({ kind: 'scheduler' as const, b })), editedJson(lrm).map((b) => ({ kind: 'lrm' as const, b })));
    const file = path.join(dir, 'config.json');
    return {
      arb, names: 'config.json',
      run(c: { kind: 'scheduler' | 'lrm'; b: Uint8Array }) {
        fs.writeFileSync(file, c.b);
        if (c.kind === 'scheduler') DDIMScheduler.fromFile(file);
        else parseLrmConfig(readJson(file), file);
      },
    };
  },
};

export const trainerStateTarget: FuzzTarget = {
  name: 'LPO state.json',
  setup(work) {
    const state = { version: 1, algo: 'lpo', iteration: 4, position: { epoch: 1, batch: 1 }, optimizerSteps: 9, seed: 3, rng: 'derived(seed, iteration)', config: {}, numPrompts: 3 };
    const file = path.join(work, 'state.json');
    return {
      arb: editedJson(state), names: 'state.json',
      run(b: Uint8Array) {
        fs.writeFileSync(file, b);
        readTrainerState(work);
      },
    };
  },
};

export const modelConfigTarget: FuzzTarget = {
  name: 'model config.json',
  async setup(work) {
    // A tiny CLIP text encoder folder; its config.json is edited and the folder loaded through fromPretrained.
    const dir = path.join(work, 'clip');
    const m = new CLIPTextModel(TINY_CLIP, { gen: new Generator(1) });
    await savePretrained(m, dir);
    m.dispose();
    const base = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    return {
      arb: editedJson(base), names: 'config.json',
      // A config that builds a model of other shapes is refused by the strict load, naming the weights file; one
      // too big for the adapter is the device's typed limit error (size and hint), as a real oversized model.
      alsoTyped: (e: unknown) => (e instanceof StateDictError && e.message.includes('model.safetensors')) || e instanceof LimitError,
      async run(b: Uint8Array) {
        fs.writeFileSync(path.join(dir, 'config.json'), b);
        (await fromPretrained(CLIPTextModel, dir)).dispose();
      },
    };
  },
};
