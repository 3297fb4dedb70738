import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { setupGpu, relL2 } from './helpers.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { CLIPTextModel } from '../src/nn/clip.js';
import { StateDictError } from '../src/nn/module.js';
import '../src/io/pretrained.js'; // links the models' fromPretrained to io (the package entry does this)
import { Generator } from '../src/tensor/random.js';
import { Tensor, tidy } from '../src/tensor/tensor.js';
import { add, mul } from '../src/tensor/ops/elementwise.js';
import { sumAll } from '../src/tensor/ops/reduce.js';
import { backward, noGrad } from '../src/autograd/tape.js';

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
    const out = model.forward({ data: ids, shape: [b, len] }, { outputHiddenStates: true });
    const hidden = out.hiddenStates!;
    const results: Record<string, Float32Array> = {
      last_hidden_state: await out.lastHiddenState.toArray(),
      pooler_output: await out.poolerOutput.toArray(),
    };
    expect(hidden.length).toBe(3);
    for (let i = 0; i < hidden.length; i++) results[`hidden_states.${i}`] = await hidden[i].toArray();
    expect(out.lastHiddenState.shape).toEqual([b, len, 16]);
    expect(out.poolerOutput.shape).toEqual([b, 16]);

    const errs: Record<string, number> = {};
    for (const [k, v] of Object.entries(results)) errs[k] = relL2(v, await outputs.readF32(k));
    console.log('CLIP text encoder relL2 vs golden:', JSON.stringify(errs));
    for (const [k, e] of Object.entries(errs)) expect(e, k).toBeLessThan(1e-4);

    [out.lastHiddenState, out.poolerOutput, ...hidden].forEach((t) => t.dispose());
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
    expect(e.wrongShape.map((m) => m.key)).toContain('text_model.encoder.layers.0.mlp.fc1.weight');
    bad.dispose();
    await w.close();
  });
});

describe('CLIPTextModel gradients', () => {
  it('backpropagates from pooler_output and last_hidden_state to every parameter (directional derivative in f32)', async () => {
    const cfg = { hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 7, hidden_act: 'quick_gelu' as const, layer_norm_eps: 1e-5, vocab_size: 30 };
    const gen = new Generator(31);
    const model = new CLIPTextModel(cfg, { gen });
    // Non-trivial norm parameters and wider embeddings, as in the golden weights.
    for (const [n, p] of model.namedParameters()) {
      if (n.includes('norm')) p.write(gen.normalArray(p.size, n.endsWith('weight') ? 1 : 0, 0.3));
      if (n.includes('embedding')) p.write(gen.normalArray(p.size, 0, 0.5));
    }
    const ids = [[28, 3, 5, 29, 29, 29, 29], [28, 7, 29, 1, 2, 29, 29]]; // EOS = the largest id (29)
    const wP = Tensor.fromArray(gen.normalArray(2 * 8), [2, 8]);
    const wL = Tensor.fromArray(gen.normalArray(2 * 7 * 8), [2, 7, 8]);
    const loss = () => tidy(() => {
      const o = model.forward(ids, { outputHiddenStates: false });
      return add(sumAll(mul(o.poolerOutput, wP)), sumAll(mul(o.lastHiddenState, wL)));
    });
    const l = loss();
    backward(l);
    l.dispose();
    const params = model.namedParameters();
    const theta = await Promise.all(params.map(([, p]) => p.toArray()));
    const grads = await Promise.all(params.map(([, p]) => p.grad!.toArray()));
    for (let i = 0; i < params.length; i++) expect(grads[i].some((v) => v !== 0), params[i][0]).toBe(true);
    model.zeroGrad();

    const dirs = params.map(([, p]) => gen.normalArray(p.size));
    let analytic = 0;
    for (let i = 0; i < params.length; i++) for (let k = 0; k < dirs[i].length; k++) analytic += grads[i][k] * dirs[i][k];
    // Unit-RMS direction over ~2k parameters: a small step keeps the curvature term below f32 noise.
    const h = 2e-3;
    const at = async (sgn: number) => {
      params.forEach(([, p], i) => p.write(theta[i].map((v, k) => v + sgn * h * dirs[i][k])));
      const v = noGrad(loss);
      const x = await v.item();
      v.dispose();
      return x;
    };
    const numeric = ((await at(1)) - (await at(-1))) / (2 * h);
    console.log(`CLIP directional derivative: analytic ${analytic.toFixed(5)}, numeric ${numeric.toFixed(5)}`);
    expect(Math.abs(numeric - analytic)).toBeLessThan(5e-3 * Math.abs(numeric) + 2e-3);
    [wP, wL].forEach((t) => t.dispose());
    model.dispose();
  });
});
