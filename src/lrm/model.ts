// The Latent Reward Model (LPO-SPEC §1.2, LRM-1.5): a diffusion U-Net run only as far as its mid block judges a
// noisy latent x_t against a prompt at timestep t, with no VAE decode.
//   text:   T = text_projection(pooler_output(text_encoder(prompt)))                       (bias-free)
//   visual: V = visual_projection(cat[mean_HW skip[i] for i in featureIndices, Ṽ_mid])      (bias-free)
//           Ṽ_mid = V_mid(∅) + w·(V_mid(c) − V_mid(∅)), ∅ = the ENCODED null prompt (VFE, Eqn 8)
//   score:  exp(τ)·cos(T, V)
import { ArgumentError, ShapeError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { add, scale, sub } from '../tensor/ops/elementwise.js';
import { embedding } from '../tensor/ops/embedding.js';
import { concat, reshape, slice } from '../tensor/ops/layout.js';
import { spatialMean } from '../tensor/ops/pool.js';
import type { CLIPTokenizer } from '../io/tokenizer.js';
import type { CLIPTextModel } from '../nn/clip.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import type { UNet2DConditionModel } from '../nn/unet.js';
import { lrmConfigFor, visualInDim, type LrmConfig } from './config.js';
import { cosineScores } from './score.js';
import { TextFeatures } from './text.js';
import { loadHeads, loadLrmParts, partsFromDiffusers, saveLrm, type BaseComponents, type FromDiffusersOptions } from './io.js';

export { TextFeatures } from './text.js';
export type { BaseComponents, FromDiffusersOptions } from './io.js';

/**
 * What the model is assembled from; it takes ownership of the U-Net (built with `upBlocks: false`) and the text
 * encoder. To start from a base model's (full) components, use LatentRewardModel.fromDiffusers, which copies them.
 */
export interface LrmParts {
  unet: UNet2DConditionModel;
  textEncoder: CLIPTextModel;
  tokenizer: CLIPTokenizer;
  config?: Partial<LrmConfig>;
  /** text_projection's initial weight [projectionDim, hidden] (a CLIP checkpoint's `text_projection.weight`). */
  textProjection?: Float32Array;
  /** Seeds the N(0, 0.02²) init of both projections (default 0). */
  seed?: number;
  /** Where the tokenizer's merges came from (copied into saved folders; default: the bundled CLIP vocabulary). */
  tokenizerFile?: string;
  /** The base model's scheduler_config.json (the noise schedule training and evaluation use), kept with the model. */
  schedulerConfig?: Record<string, unknown>;
  /** The diffusers folder the model was initialised from (recorded in config.json; its VAE encodes images). */
  baseModel?: string;
}

/** Every intermediate of the visual branch (for verification and tests); the caller disposes them. */
export interface ImageFeatures {
  /** [N, C_i] spatial means of the skip outputs at featureIndices, text-conditioned pass. */
  pooled: Tensor[];
  /** [N, C] pooled mid-block output of the text pass. */
  midText: Tensor;
  /** [N, C] pooled mid-block output of the null pass (null when w = 1: no null pass ran). */
  midNull: Tensor | null;
  /** [N, C] Ṽ_mid (= midText when w = 1). */
  midVfe: Tensor;
  /** [N, Dv] the concatenation fed to visual_projection. */
  concat: Tensor;
  /** [N, Dp] visual_projection(concat). */
  V: Tensor;
}

export interface ScoreDetails extends ImageFeatures {
  /** [N, Dp] T of each latent's prompt. */
  T: Tensor;
  tNormalized: Tensor;
  vNormalized: Tensor;
  scores: Tensor;
}

/** N(0, std²) init of a bias-free Linear (the reference's visual_projection init, std 0.02). */
function normalLinear(inF: number, outF: number, gen: Generator, std = 0.02): Linear {
  const l = new Linear(inF, outF, { bias: false, gen: new Generator(0) });
  l.weight.write(gen.normalArray(inF * outF, 0, std));
  return l;
}

export class LatentRewardModel extends Module {
  readonly config: LrmConfig;
  readonly tokenizer: CLIPTokenizer;
  readonly tokenizerFile: string | undefined;
  readonly logitScale: Tensor;
  readonly schedulerConfig: Record<string, unknown> | null;
  readonly baseModel: string | null;
  /**
   * At most this many U-Net batch items per forward (default: all at once). Smaller chunks lower the peak memory
   * and keep every tensor within a device's storage-binding limit (128 MiB on lavapipe: SD1.5 at 64×64 needs ≤ 2);
   * the scores and gradients do not change. A runtime setting, not saved.
   */
  unetBatch = Infinity;

  constructor(parts: LrmParts) {
    super();
    const unet = parts.unet;
    if (unet.hasUpBlocks) throw new ArgumentError('LatentRewardModel: the U-Net must be built with { upBlocks: false } (LatentRewardModel.fromDiffusers copies a full one)');
    const hidden = parts.textEncoder.config.hidden_size;
    const projRows = parts.textProjection ? parts.textProjection.length / hidden : undefined;
    const config = lrmConfigFor(unet.config, hidden, { ...(projRows ? { projectionDim: projRows } : {}), ...parts.config });
    this.config = config;
    this.tokenizer = parts.tokenizer;
    this.tokenizerFile = parts.tokenizerFile;
    this.schedulerConfig = parts.schedulerConfig ?? null;
    this.baseModel = parts.baseModel ?? null;
    const ctxDim = unet.config.crossAttentionDim[0];
    if (hidden !== ctxDim) throw new ShapeError(`LatentRewardModel: text encoder width ${hidden} ≠ U-Net cross_attention_dim ${ctxDim}`);
    const gen = new Generator(parts.seed ?? 0);
    this.registerModule('unet', unet);
    this.registerModule('text_encoder', parts.textEncoder);
    const tp = this.registerModule('text_projection', normalLinear(hidden, config.projectionDim, gen));
    if (parts.textProjection) {
      if (parts.textProjection.length !== hidden * config.projectionDim) {
        throw new ShapeError(`LatentRewardModel: text_projection init has ${parts.textProjection.length} values, expected [${config.projectionDim}, ${hidden}]`);
      }
      tp.weight.write(parts.textProjection);
    }
    this.registerModule('visual_projection', normalLinear(visualInDim(unet.config, config.featureIndices), config.projectionDim, gen));
    this.logitScale = this.registerParameter('logit_scale', Tensor.scalar(config.logitScaleInit));
  }

  get unet(): UNet2DConditionModel { return this.child('unet'); }
  get textEncoder(): CLIPTextModel { return this.child('text_encoder'); }
  get textProjection(): Linear { return this.child('text_projection'); }
  get visualProjection(): Linear { return this.child('visual_projection'); }
  /** Whether scoring runs the null pass (w ≠ 1, as the SD1.5 trainer decides). */
  get usesVfe(): boolean { return this.config.vfeWeight !== 1; }

  /**
   * Text features of `prompts`, each distinct prompt encoded once (with the null prompt in the same batch when
   * VFE is on). Differentiable when gradients are on. The caller disposes the result.
   */
  encodeText(prompts: readonly string[]): TextFeatures {
    if (!prompts.length) throw new ShapeError('LatentRewardModel.encodeText: no prompts');
    const rowOf = new Map<string, number>();
    const index = Int32Array.from(prompts, (p) => {
      let r = rowOf.get(p);
      if (r === undefined) rowOf.set(p, (r = rowOf.size));
      return r;
    });
    const distinct = [...rowOf.keys()];
    const texts = this.usesVfe ? [...distinct, this.config.nullPrompt] : distinct;
    const parts = tidy(() => {
      const out = this.textEncoder.forward(this.tokenizer.encodeBatch(texts));
      const pooled = this.usesVfe ? slice(out.poolerOutput, 0, { end: distinct.length }) : out.poolerOutput;
      return { pooled, T: this.textProjection.forward(pooled), context: out.lastHiddenState };
    });
    return new TextFeatures(distinct, index, parts.pooled, parts.T, parts.context, this.usesVfe ? distinct.length : -1);
  }

  /** One prompt row per latent: the features' own index (N prompts) or its single prompt for every latent. */
  private rowsFor(text: TextFeatures, n: number): Int32Array {
    if (text.index.length === n) return text.index;
    if (text.index.length === 1) return new Int32Array(n).fill(text.index[0]);
    throw new ShapeError(`LatentRewardModel: ${n} latents but text features for ${text.index.length} prompts (give N prompts or one)`);
  }

  private checkLatents(latents: Tensor): void {
    const c = this.unet.config;
    if (latents.rank !== 4 || latents.shape[1] !== c.inChannels || latents.shape[0] < 1) {
      throw new ShapeError(`LatentRewardModel: latents must be [N, ${c.inChannels}, h, w], got [${latents.shape}]`);
    }
  }

  /** The visual branch: pooled skips, mid features (with VFE) and V, for latents with one timestep each (or one for all). */
  imageFeatures(latents: Tensor, t: number | readonly number[], text: TextFeatures): ImageFeatures {
    this.checkLatents(latents);
    const N = latents.shape[0];
    const rows = this.rowsFor(text, N);
    const ts = typeof t === 'number' ? new Array<number>(N).fill(t) : t.length === 1 ? new Array<number>(N).fill(t[0]) : [...t];
    if (ts.length !== N) throw new ShapeError(`LatentRewardModel: ${ts.length} timesteps for ${N} latents`);
    const vfe = this.usesVfe;
    const w = this.config.vfeWeight;
    if (vfe && text.nullRow < 0) throw new ArgumentError('LatentRewardModel: these text features hold no null prompt (encoded with w = 1); encode them again for VFE');
    return tidy(() => {
      const [R, L, D] = text.context.shape;
      // Contexts per U-Net batch item by one differentiable gather: [text rows of each latent; the null row × N].
      const ids = vfe ? [...rows, ...new Array<number>(N).fill(text.nullRow)] : [...rows];
      const table = reshape(text.context, [R, L * D]);
      const ctx = reshape(embedding(Tensor.fromArray(Int32Array.from(ids), [ids.length], 'i32'), table), [ids.length, L, D]);
      const x = vfe ? concat([latents, latents], 0) : latents;
      const o = this.pooledUnet(x, vfe ? [...ts, ...ts] : ts, ctx);
      // Pool first, then take the text half: the null half of the skips is not used (multi_scale_cfg = False).
      const pooled = o.pooled.map((p) => (vfe ? slice(p, 0, { end: N }) : p));
      const mid = o.mid;
      const midText = vfe ? slice(mid, 0, { end: N }) : mid;
      const midNull = vfe ? slice(mid, 0, { start: N, end: 2 * N }) : null;
      const midVfe = midNull ? add(midNull, scale(sub(midText, midNull), w)) : midText;
      const cat = concat([...pooled, midVfe], 1);
      return { pooled, midText, midNull, midVfe, concat: cat, V: this.visualProjection.forward(cat) };
    });
  }

  /**
   * Spatial means of the U-Net's skip outputs at featureIndices and of its mid-block output, for the batch x
   * (run in chunks of at most `unetBatch` items; the chunks' pooled features are concatenated, so the result and
   * its gradients are those of one batch).
   */
  private pooledUnet(x: Tensor, ts: readonly number[], ctx: Tensor): { pooled: Tensor[]; mid: Tensor } {
    const B = x.shape[0];
    const chunk = Math.max(1, Math.min(B, Math.floor(this.unetBatch)));
    const run = (xs: Tensor, tc: readonly number[], cs: Tensor) => tidy(() => {
      const o = this.unet.forward(xs, tc, cs, { stopAfterMid: true });
      return { pooled: this.config.featureIndices.map((i) => spatialMean(o.downBlockResSamples[i])), mid: spatialMean(o.mid) };
    });
    if (chunk >= B) return run(x, ts, ctx);
    const parts: { pooled: Tensor[]; mid: Tensor }[] = [];
    for (let s = 0; s < B; s += chunk) {
      const e = Math.min(B, s + chunk);
      parts.push(tidy(() => run(slice(x, 0, { start: s, end: e }), ts.slice(s, e), slice(ctx, 0, { start: s, end: e }))));
    }
    return {
      pooled: this.config.featureIndices.map((_, k) => concat(parts.map((p) => p.pooled[k]), 0)),
      mid: concat(parts.map((p) => p.mid), 0),
    };
  }

  /** Everything score() computes, kept (tests and verification). The caller disposes every tensor. */
  scoreDetails(latents: Tensor, t: number | readonly number[], text: TextFeatures): ScoreDetails {
    return tidy(() => {
      const f = this.imageFeatures(latents, t, text);
      const rows = this.rowsFor(text, latents.shape[0]);
      const T = embedding(Tensor.fromArray(rows, [rows.length], 'i32'), text.T);
      const s = cosineScores(T, f.V, this.logitScale);
      return { ...f, T, tNormalized: s.tNormalized, vNormalized: s.vNormalized, scores: s.scores };
    });
  }

  /** Saves the model as an LRM folder (config.json, unet/, text_encoder/, heads.safetensors, tokenizer/, scheduler/). */
  save(dir: string): Promise<void> {
    return saveLrm(this, dir);
  }

  /** An LRM folder written by save(). */
  static async fromPretrained(dir: string): Promise<LatentRewardModel> {
    const { parts, headsFile } = await loadLrmParts(dir);
    let m: LatentRewardModel;
    try {
      m = new LatentRewardModel(parts);
    } catch (e) {
      parts.unet.dispose();
      parts.textEncoder.dispose();
      throw e;
    }
    try {
      await loadHeads(m, headsFile);
    } catch (e) {
      m.dispose();
      throw e;
    }
    return m;
  }

  /**
   * A fresh LRM initialised from a base model: a diffusers SD folder or loaded components (copied, the caller keeps
   * them). The U-Net is truncated (up path never built), the text encoder trainable; text_projection starts from
   * `opts.clipTextProjection` when given, else N(0, 0.02²) like visual_projection; τ = ln(1/0.07).
   */
  static async fromDiffusers(src: string | BaseComponents, opts: FromDiffusersOptions = {}): Promise<LatentRewardModel> {
    const parts = await partsFromDiffusers(src, opts);
    try {
      return new LatentRewardModel(parts);
    } catch (e) {
      parts.unet.dispose();
      parts.textEncoder.dispose();
      throw e;
    }
  }

  /**
   * Scores [N] of latents [N, 4, h, w] at timestep(s) t against N prompts (or TextFeatures from encodeText with N
   * prompts or one). Differentiable when gradients are on.
   */
  score(latents: Tensor, t: number | readonly number[], text: readonly string[] | TextFeatures): Tensor {
    const own = text instanceof TextFeatures ? null : this.encodeText(text);
    try {
      return tidy(() => this.scoreDetails(latents, t, own ?? (text as TextFeatures)).scores);
    } finally {
      own?.dispose();
    }
  }
}
