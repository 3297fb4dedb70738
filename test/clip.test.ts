import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2 } from './helpers.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { CLIPTextModel } from '../src/nn/clip.js';
import { StateDictError } from '../src/nn/module.js';

beforeAll(setupGpu);

// Prefer the copied fixtures; fall back to the shared golden folder.
const DIR = [join(__dirname, 'fixtures/golden/text_encoder'), join(__dirname, '../../shared/golden/text_encoder')].find((d) =>
  existsSync(join(d, 'outputs.safetensors')),
);

describe.skipIf(!DIR)('CLIPTextModel vs transformers (golden text_encoder)', () => {
  it('loads the checkpoint by key name and matches last_hidden_state, pooler_output, hidden_states (relL2 < 1e-4)', async () => {
    const model = await CLIPTextModel.fromPretrained(DIR!);
    expect(model.namedParameters().length).toBe(36); // 37 keys in the file, position_ids ignored
    const inputs = await SafetensorsFile.open(join(DIR!, 'inputs.safetensors'));
    const outputs = await SafetensorsFile.open(join(DIR!, 'outputs.safetensors'));
    const ids = await inputs.readInt32('input_ids');
    const [b, len] = inputs.info('input_ids').shape;
    const out = model.forward({ data: ids, shape: [b, len] });
    const results: Record<string, Float32Array> = {
      last_hidden_state: await out.lastHiddenState.toArray(),
      pooler_output: await out.pooledOutput.toArray(),
    };
    expect(out.hiddenStates.length).toBe(3);
    for (let i = 0; i < out.hiddenStates.length; i++) results[`hidden_states.${i}`] = await out.hiddenStates[i].toArray();
    expect(out.lastHiddenState.shape).toEqual([b, len, 16]);
    expect(out.pooledOutput.shape).toEqual([b, 16]);

    const errs: Record<string, number> = {};
    for (const [k, v] of Object.entries(results)) errs[k] = relL2(v, await outputs.readF32(k));
    console.log('CLIP text encoder relL2 vs golden:', JSON.stringify(errs));
    for (const [k, e] of Object.entries(errs)) expect(e, k).toBeLessThan(1e-4);

    [out.lastHiddenState, out.pooledOutput, ...out.hiddenStates].forEach((t) => t.dispose());
    await inputs.close();
    await outputs.close();
    model.dispose();
  });

  it('names every key like transformers and rejects a checkpoint for another config', async () => {
    const w = await SafetensorsFile.open(join(DIR!, 'weights.safetensors'));
    const cfg = { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 77, hidden_act: 'quick_gelu' as const, layer_norm_eps: 1e-5, vocab_size: 49408 };
    const ok = new CLIPTextModel(cfg);
    const own = ok.namedParameters().map(([n]) => n).sort();
    expect(own).toEqual(w.keys().filter((k) => k !== 'text_model.embeddings.position_ids').sort());
    expect(own).toContain('text_model.encoder.layers.1.self_attn.q_proj.weight');
    expect(own).toContain('text_model.final_layer_norm.bias');
    ok.dispose();

    const bad = new CLIPTextModel({ ...cfg, num_hidden_layers: 3, intermediate_size: 24 });
    let err: unknown;
    try {
      await bad.loadStateDict(w);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDictError);
    const e = err as StateDictError;
    expect(e.missing).toContain('text_model.encoder.layers.2.mlp.fc1.weight');
    expect(e.mismatched.map((m) => m.key)).toContain('text_model.encoder.layers.0.mlp.fc1.weight');
    bad.dispose();
    await w.close();
  });
});
