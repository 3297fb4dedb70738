// transformers' CLIPVisionModelWithProjection: the image tower of CLIP, the reward model a pixel-space method
// scores decoded images with. Used by the reward-cost benchmark (bench/reward.bench.ts: the LRM in latent space
// against x̂0 → VAE decode → this encoder, the paper's Table 6) with random weights; key names follow
// transformers (vision_model.embeddings.{class_embedding, patch_embedding, position_embedding},
// vision_model.pre_layrnorm, vision_model.encoder.layers.N, vision_model.post_layernorm, visual_projection).
//
// Forward: the image [B, 3, S, S] cut into (S/P)² patches by a stride-P convolution (no bias), a learned class
// token in front, learned position embeddings added, pre-LN, the encoder layers (CLIP's text layer without the
// causal mask), post-LN on the class token, and a bias-free projection.
import { ShapeError, LpoError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { add, expandTo } from '../tensor/ops/elementwise.js';
import { concat, reshape, slice, transpose } from '../tensor/ops/layout.js';
import { Conv2d, Embedding, LayerNorm, Linear, Module, ModuleList } from './layers.js';
import { CLIPEncoderLayer } from './clip.js';
import { initGenerator } from './module.js';
import { normalParam } from './init.js';

export interface CLIPVisionConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  image_size: number;
  patch_size: number;
  num_channels: number;
  projection_dim: number;
  hidden_act: 'quick_gelu' | 'gelu';
  layer_norm_eps: number;
}

/** ViT-L/14 at 224 (openai/clip-vit-large-patch14's vision_config): the CLIP that SD1.5-era pixel rewards use. */
export const CLIP_VIT_L14_CONFIG: CLIPVisionConfig = {
  hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, image_size: 224,
  patch_size: 14, num_channels: 3, projection_dim: 768, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5,
};

/** A small vision tower for the toy world's 32×32 images (4×4 patches of 8 pixels). */
export const CLIP_VISION_TOY_CONFIG: CLIPVisionConfig = {
  hidden_size: 64, intermediate_size: 256, num_hidden_layers: 2, num_attention_heads: 4, image_size: 32,
  patch_size: 8, num_channels: 3, projection_dim: 32, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5,
};

class CLIPVisionEmbeddings extends Module {
  readonly classEmbedding: Tensor;
  readonly numPositions: number;

  constructor(readonly cfg: CLIPVisionConfig, gen: Generator) {
    super();
    const d = cfg.hidden_size;
    this.classEmbedding = this.registerParameter('class_embedding', normalParam([d], d ** -0.5, gen));
    this.registerModule('patch_embedding', new Conv2d(cfg.num_channels, d, cfg.patch_size, { stride: cfg.patch_size, bias: false, gen }));
    this.numPositions = (cfg.image_size / cfg.patch_size) ** 2 + 1;
    this.registerModule('position_embedding', new Embedding(this.numPositions, d, { gen, std: 0.02 }));
  }

  /** pixels [B, C, S, S] → [B, 1 + (S/P)², D] */
  forward(pixels: Tensor): Tensor {
    return tidy(() => {
      const [b] = pixels.shape;
      const d = this.cfg.hidden_size;
      const p = this.child<Conv2d>('patch_embedding').forward(pixels); // [B, D, g, g]
      const patches = transpose(reshape(p, [b, d, this.numPositions - 1]), 1, 2);
      const cls = expandTo(reshape(this.classEmbedding, [1, 1, d]), [b, 1, d]);
      const pos = reshape(this.child<Embedding>('position_embedding').weight, [1, this.numPositions, d]);
      return add(concat([cls, patches], 1), pos);
    });
  }
}

export interface CLIPVisionOutput {
  /** [B, projection_dim] visual_projection(post_layernorm(last_hidden_state[:, 0])). */
  imageEmbeds: Tensor;
  /** [B, 1 + (S/P)², hidden_size] */
  lastHiddenState: Tensor;
}

export class CLIPVisionModelWithProjection extends Module {
  constructor(readonly config: CLIPVisionConfig, opts: { gen?: Generator } = {}) {
    super();
    if (config.hidden_size % config.num_attention_heads !== 0) throw new LpoError(`CLIPVisionConfig: hidden_size ${config.hidden_size} is not divisible by num_attention_heads ${config.num_attention_heads}`);
    if (config.image_size % config.patch_size !== 0) throw new LpoError(`CLIPVisionConfig: image_size ${config.image_size} is not a multiple of patch_size ${config.patch_size}`);
    const gen = initGenerator(opts.gen);
    const vm = this.registerModule('vision_model', new Module());
    vm.registerModule('embeddings', new CLIPVisionEmbeddings(config, gen));
    vm.registerModule('pre_layrnorm', new LayerNorm(config.hidden_size, { eps: config.layer_norm_eps }));
    const encoder = vm.registerModule('encoder', new Module());
    encoder.registerModule('layers', new ModuleList(Array.from({ length: config.num_hidden_layers }, () => new CLIPEncoderLayer(config, gen, false))));
    vm.registerModule('post_layernorm', new LayerNorm(config.hidden_size, { eps: config.layer_norm_eps }));
    this.registerModule('visual_projection', new Linear(config.hidden_size, config.projection_dim, { bias: false, gen }));
  }

  /** pixels [B, num_channels, image_size, image_size] (already resized and normalised). */
  forward(pixels: Tensor): CLIPVisionOutput {
    const c = this.config;
    if (pixels.rank !== 4 || pixels.shape[1] !== c.num_channels || pixels.shape[2] !== c.image_size || pixels.shape[3] !== c.image_size) {
      throw new ShapeError(`CLIPVisionModel: pixels must be [B, ${c.num_channels}, ${c.image_size}, ${c.image_size}], got [${pixels.shape}]`);
    }
    const vm = this.child('vision_model');
    let h = tidy(() => vm.child<LayerNorm>('pre_layrnorm').forward(vm.child<CLIPVisionEmbeddings>('embeddings').forward(pixels)));
    for (const layer of vm.child('encoder').child<ModuleList<CLIPEncoderLayer>>('layers')) {
      const next = layer.forward(h);
      h.dispose();
      h = next;
    }
    const imageEmbeds = tidy(() => {
      const cls = reshape(slice(h, 1, { start: 0, end: 1 }), [h.shape[0], c.hidden_size]);
      return this.child<Linear>('visual_projection').forward(vm.child<LayerNorm>('post_layernorm').forward(cls));
    });
    return { imageEmbeds, lastHiddenState: h };
  }
}
