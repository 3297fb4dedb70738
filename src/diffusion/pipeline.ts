// Text-to-image with classifier-free guidance and DDIM (diffusers' StableDiffusionPipeline, SD1.x/2.x).
//
// Each step: eps = unet(cat[x, x], t, cat[negative_embeds, prompt_embeds]); (eps_u, eps_c) = chunk(2);
// eps = eps_u + g·(eps_c − eps_u); x = ddim.step(eps, t, x, η). Finally
// image = clamp(vae.decode(x / scaling_factor)/2 + 0.5, 0, 1).
// Written against small structural interfaces so any text encoder / U-Net / VAE with these methods plugs in.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LpoError, ShapeError } from '../errors.js';
import { gpu } from '../gpu/runtime.js';
import { noGradAsync } from '../autograd/tape.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { affine, div, maximum, minimum } from '../tensor/ops/elementwise.js';
import { concat } from '../tensor/ops/layout.js';
import { cfgCombine } from '../tensor/ops/guidance.js';
import { DDIMScheduler } from './ddim.js';
import { guidedDdimStep } from './guided_step.js';
import { openDiffusersModel } from '../io/diffusers.js';
import { fromPretrained, type ModelClass } from '../io/pretrained.js';
import { CLIPTokenizer } from '../io/tokenizer.js';
import { DiffusersError } from '../io/weights.js';
import { CLIPTextModel } from '../nn/clip.js';
import type { Module } from '../nn/module.js';
import { UNet2DConditionModel } from '../nn/unet.js';
import { AutoencoderKL } from '../nn/vae.js';

export interface PromptTokenizer {
  encode(text: string): number[];
}

export interface TextEncoderLike {
  forward(ids: readonly (readonly number[])[], opts?: { outputHiddenStates?: boolean }): {
    lastHiddenState: Tensor;
    poolerOutput?: Tensor;
    hiddenStates?: Tensor[];
  };
}

export interface UNetLike {
  readonly config: { inChannels: number };
  forward(sample: Tensor, timesteps: readonly number[] | number, encoderHiddenStates: Tensor): { sample: Tensor };
}

export interface VAELike {
  readonly config: { latentChannels: number; scalingFactor: number; blockOutChannels: readonly number[] };
  decode(z: Tensor): Tensor;
}

export interface PipelineComponents {
  tokenizer: PromptTokenizer;
  textEncoder: TextEncoderLike;
  unet: UNetLike;
  vae: VAELike;
  scheduler: DDIMScheduler;
  /** The U-Net config's sample_size (latent pixels; 64 for SD1.5): the default image size is this × the VAE factor. */
  sampleSize?: number;
}

export interface PipelineLoadOptions {
  /** Use the `.fp16` weights when a component has both. */
  preferFp16?: boolean;
  /** Called with a short line per model as it loads. */
  log?: (msg: string) => void;
}

export interface StepInfo {
  /** 0-based step index. */
  step: number;
  total: number;
  timestep: number;
  /** x after this step (valid during the callback only; retain() it to keep it). */
  latents: Tensor;
}

export interface GenerateOptions {
  prompt: string | readonly string[];
  /** Default '' (the encoded empty prompt, as SD1.x pipelines use). */
  negativePrompt?: string | readonly string[];
  numInferenceSteps?: number;
  /** CFG scale g; guidance is on when g > 1 (as diffusers). Default 7.5. */
  guidanceScale?: number;
  /** DDIM η (0: deterministic). */
  eta?: number;
  /** Seed for the initial latents (and DDIM noise when η > 0); ignored when `generator` is given. */
  seed?: number;
  generator?: Generator;
  /** Initial latents x_T [B, C, h, w] (used as given: DDIM's init_noise_sigma is 1). */
  latents?: Tensor;
  /** Pixel size; default unet sample_size × the VAE factor. */
  height?: number;
  width?: number;
  /** Precomputed embeddings [B, L, D] (skip the tokenizer and text encoder). */
  promptEmbeds?: Tensor;
  negativePromptEmbeds?: Tensor;
  /** Called after every step (awaited); the GPU work of the step is finished when it runs. */
  onStep?: (info: StepInfo) => void | Promise<void>;
  /** 'image' (default) decodes with the VAE; 'latent' returns only the latents. */
  outputType?: 'image' | 'latent';
}

export interface GenerateResult {
  /** [B, 3, H, W] in [0, 1] (absent for outputType 'latent'). */
  images?: Tensor;
  /** Final latents [B, C, h, w]. */
  latents: Tensor;
  promptEmbeds: Tensor;
  negativePromptEmbeds: Tensor | null;
  timesteps: number[];
}

export class StableDiffusionPipeline {
  readonly tokenizer: PromptTokenizer;
  readonly textEncoder: TextEncoderLike;
  readonly unet: UNetLike;
  readonly vae: VAELike;
  readonly scheduler: DDIMScheduler;
  readonly sampleSize: number;

  constructor(c: PipelineComponents) {
    this.sampleSize = c.sampleSize ?? 64;
    this.tokenizer = c.tokenizer;
    this.textEncoder = c.textEncoder;
    this.unet = c.unet;
    this.vae = c.vae;
    this.scheduler = c.scheduler;
  }

  /**
   * diffusers' StableDiffusionPipeline.from_pretrained: a Stable Diffusion folder (model_index.json, tokenizer/,
   * text_encoder/, unet/, vae/, scheduler/), each model loaded strictly by io's fromPretrained (the one loading
   * route), the scheduler a DDIM built from the folder's scheduler config. A failure frees the models already loaded.
   */
  static async fromPretrained(dir: string, opts: PipelineLoadOptions = {}): Promise<StableDiffusionPipeline> {
    const log = opts.log ?? (() => {});
    const folder = await openDiffusersModel(dir, { preferFp16: opts.preferFp16, openWeights: false });
    await folder.close(); // nothing was opened: the components are only located
    const sched = folder.get('scheduler');
    if (!sched.config) throw new DiffusersError(sched.dir, 'component \'scheduler\' has no scheduler_config.json');
    const scheduler = DDIMScheduler.fromConfig(sched.config);
    const tok = folder.components.get('tokenizer');
    const merges = tok ? ['merges.txt', 'bpe_simple_vocab_16e6.txt.gz'].map((f) => join(tok.dir, f)).find((p) => existsSync(p)) : undefined;
    if (tok && !merges) throw new DiffusersError(tok.dir, 'the tokenizer folder has no merges.txt');
    const tokenizer = CLIPTokenizer.fromFile(merges);
    const loaded: Module[] = [];
    const load = async <M extends Module>(cls: ModelClass<M>, name: string): Promise<M> => {
      const c = folder.get(name);
      log(`${name}: ${c.weightsPath}`);
      const m = await fromPretrained(cls, c.dir, { preferFp16: opts.preferFp16 });
      loaded.push(m);
      return m;
    };
    try {
      const textEncoder = await load(CLIPTextModel, 'text_encoder');
      const unet = await load(UNet2DConditionModel, 'unet');
      const vae = await load(AutoencoderKL, 'vae');
      return new StableDiffusionPipeline({ tokenizer, textEncoder, unet, vae, scheduler, sampleSize: unet.config.sampleSize });
    } catch (e) {
      for (const m of loaded) m.dispose();
      throw e;
    }
  }

  /** Frees the models' parameters (those that can be freed); the pipeline cannot be used afterwards. */
  dispose(): void {
    for (const m of [this.textEncoder, this.unet, this.vae] as { dispose?: () => void }[]) m.dispose?.();
  }

  /** 2^(len(vae.block_out_channels) − 1): 8 for SD. */
  get vaeScaleFactor(): number {
    return 2 ** (this.vae.config.blockOutChannels.length - 1);
  }

  /** text_encoder(tokenize(prompts)).last_hidden_state: [B, 77, D]. */
  encodePrompt(prompts: readonly string[]): Tensor {
    const ids = prompts.map((p) => this.tokenizer.encode(p));
    const out = this.textEncoder.forward(ids, { outputHiddenStates: false });
    out.poolerOutput?.dispose();
    for (const h of out.hiddenStates ?? []) if (h !== out.lastHiddenState) h.dispose();
    return out.lastHiddenState;
  }

  /** The classifier-free-guided noise prediction at t for latents x (B items) and context cat[neg; pos]. */
  guidedNoise(x: Tensor, t: number, context: Tensor, guidanceScale: number): Tensor {
    return tidy(() => {
      const B = x.shape[0];
      if (context.shape[0] === B) return this.unet.forward(x, t, context).sample;
      // noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond), in one launch
      return cfgCombine(this.unet.forward(concat([x, x], 0), t, context).sample, guidanceScale);
    });
  }

  /** image = clamp(vae.decode(latents / scaling_factor)/2 + 0.5, 0, 1). */
  decodeLatents(latents: Tensor): Tensor {
    return tidy(() => {
      const sf = Tensor.fromArray([this.vae.config.scalingFactor], [1]);
      const img = this.vae.decode(div(latents, sf));
      const y = affine(img, { scale: 0.5, shift: 0.5 });
      return minimum(maximum(y, Tensor.fromArray([0], [1])), Tensor.fromArray([1], [1]));
    });
  }

  async generate(opts: GenerateOptions): Promise<GenerateResult> {
    return noGradAsync(() => this.run(opts));
  }

  private async run(o: GenerateOptions): Promise<GenerateResult> {
    const prompts = typeof o.prompt === 'string' ? [o.prompt] : [...o.prompt];
    const steps = o.numInferenceSteps ?? 50;
    const g = o.guidanceScale ?? 7.5;
    const eta = o.eta ?? 0;
    const cfg = g > 1;
    const gen = o.generator ?? new Generator(o.seed ?? 0);

    let B = prompts.length;
    if (o.promptEmbeds) B = o.promptEmbeds.shape[0];
    if (B < 1) throw new LpoError('generate: no prompt');
    const negs = o.negativePrompt === undefined ? new Array<string>(B).fill('')
      : typeof o.negativePrompt === 'string' ? new Array<string>(B).fill(o.negativePrompt) : [...o.negativePrompt];
    if (negs.length !== B) throw new ShapeError(`generate: ${negs.length} negative prompts for ${B} prompts`);

    const promptEmbeds = o.promptEmbeds ? o.promptEmbeds.retain() : this.encodePrompt(prompts);
    let negEmbeds: Tensor | null = null;
    if (cfg) negEmbeds = o.negativePromptEmbeds ? o.negativePromptEmbeds.retain() : this.encodePrompt(negs);
    if (negEmbeds && negEmbeds.shape.join() !== promptEmbeds.shape.join()) {
      throw new ShapeError(`generate: negative embeddings [${negEmbeds.shape}] and prompt embeddings [${promptEmbeds.shape}] differ`);
    }
    const f = this.vaeScaleFactor;
    const C = this.unet.config.inChannels;
    const timesteps = this.scheduler.setTimesteps(steps);
    const context = negEmbeds ? concat([negEmbeds, promptEmbeds], 0) : promptEmbeds.retain();
    let latents: Tensor | null = null;
    try {
      if (o.latents) {
        const s = o.latents.shape;
        if (s.length !== 4 || s[0] !== B || s[1] !== C) throw new ShapeError(`generate: latents must be [${B}, ${C}, h, w], got [${s}]`);
        latents = o.latents.retain();
      } else {
        const base = this.sampleSize * f;
        const H = o.height ?? base;
        const W = o.width ?? base;
        if (H % f || W % f) throw new ShapeError(`generate: height and width must be multiples of ${f}, got ${H}x${W}`);
        latents = Tensor.randn([B, C, H / f, W / f], gen, this.scheduler.initNoiseSigma);
      }
      for (let i = 0; i < timesteps.length; i++) {
        const t = timesteps[i];
        // The U-Net on both CFG halves at once, then guidance and the DDIM update in one launch.
        const guided = context.shape[0] !== B;
        const eps = this.unet.forward(guided ? concat([latents, latents], 0) : latents, t, context).sample;
        const r = guidedDdimStep(this.scheduler, eps, t, latents, { guidanceScale: guided ? g : undefined, eta, generator: gen });
        eps.dispose();
        r.predOriginalSample.dispose();
        latents.dispose();
        latents = r.prevSample;
        if (o.onStep) {
          await gpu().sync();
          await o.onStep({ step: i, total: timesteps.length, timestep: t, latents });
        }
      }
      const images = o.outputType === 'latent' ? undefined : this.decodeLatents(latents);
      return { images, latents, promptEmbeds, negativePromptEmbeds: negEmbeds, timesteps };
    } catch (e) {
      // A failed step (bad shapes, a lost device, an onStep that throws) frees what the run made.
      for (const t of [latents, promptEmbeds, negEmbeds]) t?.dispose();
      throw e;
    } finally {
      context.dispose();
    }
  }
}
