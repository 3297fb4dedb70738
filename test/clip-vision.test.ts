// CLIPVisionModelWithProjection (src/nn/clip_vision.ts) against a float64 forward written here from the
// transformers definition, at a tiny config with random non-zero weights: patch embedding (stride-P conv, no
// bias), class token, position embeddings, pre-LN, pre-LN encoder layers (non-causal attention, quick_gelu MLP),
// post-LN of the class token, bias-free projection. Plus the transformers key names and shape errors.
import { describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, relL2 } from './helpers.js';
import { attentionRef } from './ref/attention.js';
import { linearRef } from './ref/nn.js';
import { layerNormRef } from './ref/norm.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { noGrad } from '../src/autograd/tape.js';
import { CLIPVisionModelWithProjection, type CLIPVisionConfig } from '../src/nn/clip_vision.js';
import { ShapeError } from '../src/errors.js';

await setupGpu();

const CFG: CLIPVisionConfig = {
  hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2, image_size: 12, patch_size: 4,
  num_channels: 3, projection_dim: 5, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5,
};

function forwardRef(p: Map<string, Float64Array>, x: Float64Array, B: number, c: CLIPVisionConfig): { emb: Float64Array; last: Float64Array } {
  const { hidden_size: D, patch_size: P, image_size: S, num_channels: C } = c;
  const g = S / P;
  const L = g * g + 1;
  const w = p.get('vision_model.embeddings.patch_embedding.weight')!;
  const cls = p.get('vision_model.embeddings.class_embedding')!;
  const pos = p.get('vision_model.embeddings.position_embedding.weight')!;
  let h = new Float64Array(B * L * D);
  for (let b = 0; b < B; b++) {
    for (let d = 0; d < D; d++) h[(b * L) * D + d] = cls[d] + pos[d];
    for (let gy = 0; gy < g; gy++) for (let gx = 0; gx < g; gx++) {
      const tok = 1 + gy * g + gx;
      for (let d = 0; d < D; d++) {
        let s = 0;
        for (let ch = 0; ch < C; ch++) for (let ky = 0; ky < P; ky++) for (let kx = 0; kx < P; kx++) {
          s += w[((d * C + ch) * P + ky) * P + kx] * x[((b * C + ch) * S + gy * P + ky) * S + gx * P + kx];
        }
        h[(b * L + tok) * D + d] = s + pos[tok * D + d];
      }
    }
  }
  const ln = (v: Float64Array, name: string, rows: number) => layerNormRef(v, rows, D, c.layer_norm_eps, p.get(`${name}.weight`), p.get(`${name}.bias`)).y;
  const lin = (v: Float64Array, name: string, rows: number, out: number, inF: number, bias = true) => linearRef(v, rows, p.get(`${name}.weight`)!, out, inF, bias ? p.get(`${name}.bias`) : undefined);
  h = ln(h, 'vision_model.pre_layrnorm', B * L);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const pre = `vision_model.encoder.layers.${i}`;
    const n1 = ln(h, `${pre}.layer_norm1`, B * L);
    const [q, k, v] = ['q', 'k', 'v'].map((t) => lin(n1, `${pre}.self_attn.${t}_proj`, B * L, D, D));
    const a = lin(attentionRef(q, k, v, B, L, L, c.num_attention_heads), `${pre}.self_attn.out_proj`, B * L, D, D);
    h = h.map((val, j) => val + a[j]);
    const n2 = ln(h, `${pre}.layer_norm2`, B * L);
    const f1 = lin(n2, `${pre}.mlp.fc1`, B * L, c.intermediate_size, D).map((z) => z / (1 + Math.exp(-1.702 * z)));
    const f2 = lin(f1, `${pre}.mlp.fc2`, B * L, D, c.intermediate_size);
    h = h.map((val, j) => val + f2[j]);
  }
  const clsRows = new Float64Array(B * D);
  for (let b = 0; b < B; b++) for (let d = 0; d < D; d++) clsRows[b * D + d] = h[b * L * D + d];
  const emb = lin(ln(clsRows, 'vision_model.post_layernorm', B), 'visual_projection', B, c.projection_dim, D, false);
  return { emb, last: h };
}

describe('CLIPVisionModelWithProjection', () => {
  it('matches a float64 forward at a tiny config (image_embeds and last_hidden_state, relL2 < 1e-5)', async () => {
    const model = new CLIPVisionModelWithProjection(CFG, { gen: new Generator(3) });
    const gen = new Generator(4);
    // Random non-zero weights everywhere (LayerNorm's ones/zeros would hide a swapped γ/β).
    const params = new Map<string, Float64Array>();
    for (const [name, t] of model.namedParameters()) {
      const v = f32round(randNonZero(gen, t.size, 0.05, 0.5));
      if (name.endsWith('norm1.weight') || name.endsWith('norm2.weight') || name.endsWith('layrnorm.weight') || name.endsWith('layernorm.weight')) v.forEach((z, i) => { v[i] = 1 + z; });
      params.set(name, v);
    }
    model.loadStateDict(new Map([...params].map(([n, v]) => [n, Tensor.fromArray(v, model.namedParameters().find(([m]) => m === n)![1].shape)])));
    const B = 2;
    const xh = f32round(randNonZero(gen, B * 3 * 12 * 12));
    const x = Tensor.fromArray(xh, [B, 3, 12, 12]);
    const out = noGrad(() => model.forward(x));
    expect(out.imageEmbeds.shape).toEqual([B, 5]);
    expect(out.lastHiddenState.shape).toEqual([B, 10, 8]);
    const ref = forwardRef(params, xh, B, CFG);
    expect(relL2(await out.lastHiddenState.toArray(), ref.last)).toBeLessThan(1e-5);
    expect(relL2(await out.imageEmbeds.toArray(), ref.emb)).toBeLessThan(1e-5);
    [out.imageEmbeds, out.lastHiddenState, x].forEach((t) => t.dispose());
    model.dispose();
  });

  it('names its weights like transformers and rejects a wrong image size', () => {
    const model = new CLIPVisionModelWithProjection(CFG, { gen: new Generator(5) });
    const names = model.namedParameters().map(([n]) => n);
    for (const k of ['vision_model.embeddings.class_embedding', 'vision_model.embeddings.patch_embedding.weight', 'vision_model.embeddings.position_embedding.weight',
      'vision_model.pre_layrnorm.weight', 'vision_model.encoder.layers.1.self_attn.q_proj.bias', 'vision_model.encoder.layers.0.mlp.fc2.weight',
      'vision_model.post_layernorm.bias', 'visual_projection.weight']) expect(names).toContain(k);
    expect(names).not.toContain('visual_projection.bias');
    expect(names).not.toContain('vision_model.embeddings.patch_embedding.bias');
    expect(() => model.forward(Tensor.empty([1, 3, 8, 8]))).toThrow(ShapeError);
    model.dispose();
  });
});
