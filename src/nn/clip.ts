// transformers' CLIPTextModel (SD1.x text encoder): pre-LN blocks, causal mask, no padding mask.
import { LpoError, ShapeError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { add, gelu, quickGelu } from '../tensor/ops/elementwise.js';
import { attention } from '../tensor/ops/attention.js';
import { embedding } from '../tensor/ops/embedding.js';
import { reshape } from '../tensor/ops/layout.js';
import { Module, ModuleList, initGenerator } from './module.js';
import type { CheckpointKeys } from './state_dict.js';
import { PretrainedModel } from './pretrained.js';
import { Linear, type Projection } from './linear.js';
import { Embedding } from './layers.js';
import { LayerNorm } from './norm.js';

/** The fields of transformers' CLIPTextConfig that the model uses. */
export interface CLIPTextConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: 'quick_gelu' | 'gelu';
  layer_norm_eps: number;
  vocab_size: number;
}

export function parseCLIPTextConfig(raw: Record<string, unknown>): CLIPTextConfig {
  const num = (k: string, dflt?: number): number => {
    const v = raw[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new LpoError(`CLIPTextConfig: '${k}' must be a number, got ${JSON.stringify(raw[k])}`);
    return v;
  };
  const act = (raw.hidden_act ?? 'quick_gelu') as string;
  if (act !== 'quick_gelu' && act !== 'gelu') throw new LpoError(`CLIPTextConfig: hidden_act '${act}' is not supported (quick_gelu or gelu)`);
  const cfg: CLIPTextConfig = {
    hidden_size: num('hidden_size', 512),
    intermediate_size: num('intermediate_size', 2048),
    num_hidden_layers: num('num_hidden_layers', 12),
    num_attention_heads: num('num_attention_heads', 8),
    max_position_embeddings: num('max_position_embeddings', 77),
    hidden_act: act,
    layer_norm_eps: num('layer_norm_eps', 1e-5),
    vocab_size: num('vocab_size', 49408),
  };
  if (cfg.hidden_size % cfg.num_attention_heads !== 0) {
    throw new LpoError(`CLIPTextConfig: hidden_size ${cfg.hidden_size} is not divisible by num_attention_heads ${cfg.num_attention_heads}`);
  }
  return cfg;
}

/** What a CLIP encoder layer needs of a config (the text and the vision towers share the layer). */
export type CLIPLayerConfig = Pick<CLIPTextConfig, 'hidden_size' | 'intermediate_size' | 'num_attention_heads' | 'hidden_act' | 'layer_norm_eps'>;

class CLIPAttention extends Module {
  /** `causal`: the text tower masks future tokens; the vision tower attends over every patch. */
  constructor(readonly cfg: CLIPLayerConfig, gen: Generator, readonly causal = true) {
    super();
    const d = cfg.hidden_size;
    for (const n of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) this.registerModule(n, new Linear(d, d, { gen }));
  }

  forward(x: Tensor): Tensor {
    const q = this.child<Projection>('q_proj').forward(x);
    const k = this.child<Projection>('k_proj').forward(x);
    const v = this.child<Projection>('v_proj').forward(x);
    const heads = this.cfg.num_attention_heads;
    const a = attention(q, k, v, heads, { scale: 1 / Math.sqrt(this.cfg.hidden_size / heads), causal: this.causal });
    const out = this.child<Projection>('out_proj').forward(a);
    [q, k, v, a].forEach((t) => t.dispose());
    return out;
  }
}

class CLIPMLP extends Module {
  constructor(readonly cfg: CLIPLayerConfig, gen: Generator) {
    super();
    this.registerModule('fc1', new Linear(cfg.hidden_size, cfg.intermediate_size, { gen }));
    this.registerModule('fc2', new Linear(cfg.intermediate_size, cfg.hidden_size, { gen }));
  }

  forward(x: Tensor): Tensor {
    const h = this.child<Projection>('fc1').forward(x);
    const a = this.cfg.hidden_act === 'quick_gelu' ? quickGelu(h) : gelu(h);
    const out = this.child<Projection>('fc2').forward(a);
    h.dispose();
    a.dispose();
    return out;
  }
}

/** transformers' CLIPEncoderLayer: x + attn(ln1(x)), then + mlp(ln2(·)) (pre-LN). */
export class CLIPEncoderLayer extends Module {
  constructor(cfg: CLIPLayerConfig, gen: Generator, causal = true) {
    super();
    this.registerModule('self_attn', new CLIPAttention(cfg, gen, causal));
    this.registerModule('layer_norm1', new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps }));
    this.registerModule('mlp', new CLIPMLP(cfg, gen));
    this.registerModule('layer_norm2', new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps }));
  }

  forward(x: Tensor): Tensor {
    const n1 = this.child<LayerNorm>('layer_norm1').forward(x);
    const a = this.child<CLIPAttention>('self_attn').forward(n1);
    const h = add(x, a);
    const n2 = this.child<LayerNorm>('layer_norm2').forward(h);
    const m = this.child<CLIPMLP>('mlp').forward(n2);
    const out = add(h, m);
    [n1, a, h, n2, m].forEach((t) => t.dispose());
    return out;
  }
}

class CLIPTextEmbeddings extends Module {
  constructor(readonly cfg: CLIPTextConfig, gen: Generator) {
    super();
    // transformers inits both N(0, 0.02).
    this.registerModule('token_embedding', new Embedding(cfg.vocab_size, cfg.hidden_size, { gen, std: 0.02 }));
    this.registerModule('position_embedding', new Embedding(cfg.max_position_embeddings, cfg.hidden_size, { gen, std: 0.02 }));
  }

  /** The `position_ids` buffer (arange) that older transformers checkpoints store: accepted and ignored. */
  protected override checkpointKeys(): CheckpointKeys {
    return { ignore: (key) => key === 'position_ids' };
  }

  forward(ids: Tensor): Tensor {
    const [, len] = ids.shape;
    const pos = Tensor.fromArray(Int32Array.from({ length: len }, (_, i) => i), [len], 'i32');
    const t = this.child<Embedding>('token_embedding').forward(ids);
    const p = this.child<Embedding>('position_embedding').forward(pos);
    const out = add(t, p);
    [pos, t, p].forEach((x) => x.dispose());
    return out;
  }
}

export interface CLIPTextOutput {
  /** [B, L, D], after final_layer_norm (the U-Net's context). */
  lastHiddenState: Tensor;
  /** [B, D]: lastHiddenState at the first EOS (argmax of the ids) of each row (transformers' `pooler_output`). */
  poolerOutput: Tensor;
  /**
   * Embeddings, then each layer's output, before the final norm (num_hidden_layers + 1 tensors); only with
   * `outputHiddenStates: true` (transformers' `hidden_states`, None by default there too).
   */
  hiddenStates?: Tensor[];
}

export interface CLIPForwardOptions {
  /** Return every layer's output as `hiddenStates` (default false, as in transformers: the layer outputs are freed). */
  outputHiddenStates?: boolean;
}

export type TokenIds = Int32Array | readonly (readonly number[])[] | { data: ArrayLike<number>; shape: readonly [number, number] };

function hostIds(ids: TokenIds): { data: Int32Array; shape: [number, number] } {
  if (ids instanceof Int32Array) return { data: ids, shape: [1, ids.length] };
  if (Array.isArray(ids)) {
    const rows = ids as readonly (readonly number[])[];
    const len = rows[0]?.length ?? 0;
    if (rows.some((r) => r.length !== len)) throw new ShapeError('CLIPTextModel: token id rows differ in length');
    return { data: Int32Array.from(rows.flat()), shape: [rows.length, len] };
  }
  const o = ids as { data: ArrayLike<number>; shape: readonly [number, number] };
  if (o.data.length !== o.shape[0] * o.shape[1]) throw new ShapeError(`CLIPTextModel: ${o.data.length} ids for shape [${o.shape}]`);
  return { data: Int32Array.from(o.data), shape: [o.shape[0], o.shape[1]] };
}

/** Root module: every key sits under `text_model.`, as in transformers' checkpoints. */
export class CLIPTextModel extends PretrainedModel {
  readonly config: CLIPTextConfig;

  constructor(config: CLIPTextConfig, opts: { gen?: Generator } = {}) {
    super();
    this.config = config;
    const gen = initGenerator(opts.gen);
    const tm = this.registerModule('text_model', new Module());
    tm.registerModule('embeddings', new CLIPTextEmbeddings(config, gen));
    const encoder = tm.registerModule('encoder', new Module());
    encoder.registerModule('layers', new ModuleList(Array.from({ length: config.num_hidden_layers }, () => new CLIPEncoderLayer(config, gen))));
    tm.registerModule('final_layer_norm', new LayerNorm(config.hidden_size, { eps: config.layer_norm_eps }));
  }

  private get textModel(): Module { return this.child('text_model'); }
  get layers(): ModuleList<CLIPEncoderLayer> { return this.textModel.child<Module>('encoder').child('layers'); }

  /**
   * Encodes token ids ([B, L] host values; L ≤ max_position_embeddings). The pooled position is found
   * on the host from these ids (first occurrence of the largest id, i.e. the first EOS for CLIP ids).
   */
  forward(inputIds: TokenIds, opts: CLIPForwardOptions = {}): CLIPTextOutput {
    const { data, shape } = hostIds(inputIds);
    const [b, len] = shape;
    if (len > this.config.max_position_embeddings) throw new ShapeError(`CLIPTextModel: ${len} tokens > max_position_embeddings ${this.config.max_position_embeddings}`);
    const keepHidden = opts.outputHiddenStates ?? false;
    const ids = Tensor.fromArray(data, shape, 'i32');
    let h = this.textModel.child<CLIPTextEmbeddings>('embeddings').forward(ids);
    ids.dispose();
    const hiddenStates: Tensor[] = [h];
    for (const layer of this.layers) {
      const next = layer.forward(h);
      if (!keepHidden) h.dispose();
      h = next;
      hiddenStates.push(h);
    }
    const last = this.textModel.child<LayerNorm>('final_layer_norm').forward(h);
    if (!keepHidden) h.dispose();

    // pooler = last[b, argmax(ids[b])], gathered as rows of the [B·L, D] view.
    const rows = new Int32Array(b);
    for (let i = 0; i < b; i++) {
      let best = 0;
      for (let j = 1; j < len; j++) if (data[i * len + j] > data[i * len + best]) best = j;
      rows[i] = i * len + best;
    }
    const flat = reshape(last, [b * len, this.config.hidden_size]);
    const idx = Tensor.fromArray(rows, [b], 'i32');
    const poolerOutput = embedding(idx, flat);
    flat.dispose();
    idx.dispose();
    return keepHidden ? { lastHiddenState: last, poolerOutput, hiddenStates } : { lastHiddenState: last, poolerOutput };
  }

  /** The name config.json gives this class. */
  static readonly className = 'CLIPTextModel';

  /** Builds the model from a transformers config.json object (what loaders call). */
  static fromConfig(config: Record<string, unknown>): CLIPTextModel {
    return new CLIPTextModel(parseCLIPTextConfig(config));
  }

  /** transformers names its weights model.safetensors. */
  static readonly weightsName = 'model';

  /** The config as transformers' config.json. */
  toConfig(): Record<string, unknown> {
    return { architectures: ['CLIPTextModel'], model_type: 'clip_text_model', ...this.config };
  }
}
