// The README written next to the toy base checkpoint: what the model is, how it was made (seed, settings,
// wall time per stage, machine), and what it does on the held-out prompts.
import type { PretrainConfig, PretrainResult } from './pretrain.js';
import type { EvalSummary } from './evaluate.js';
import { TOY_TEXT_ENCODER_CONFIG, TOY_UNET_CONFIG, TOY_VAE_CONFIG } from './model.js';

export interface ReadmeInput {
  cfg: PretrainConfig;
  result: Pick<PretrainResult, 'seconds' | 'scalingFactor' | 'models' | 'vaeCurve' | 'diffusionCurve' | 'reconstruction'>;
  evals: { guidanceScale: number; summary: EvalSummary }[];
  bytes: number;
  machine: string;
}

const min = (s: number) => `${(s / 60).toFixed(1)} min`;
const ms = (m: { mean: number; spread: number }) => `${m.mean.toFixed(3)} ± ${m.spread.toFixed(3)}`;

export function toyReadme(r: ReadmeInput): string {
  const { cfg, result: res } = r;
  const n = (m: { numParameters(): number }) => m.numParameters().toLocaleString('en-US');
  const lastVae = res.vaeCurve[res.vaeCurve.length - 1];
  const lastDiff = res.diffusionCurve[res.diffusionCurve.length - 1];
  const cats = r.evals[0] ? Object.keys(r.evals[0].summary.byCategory) : [];
  return `# Toy base model (lpo-wgsl toy world)

A Stable-Diffusion-shaped text-to-image model of the toy world (32×32 scenes of one to three circles, squares
and triangles in red, green, blue and yellow), pre-trained from scratch by this project's own autograd and AdamW
on lavapipe. It is deliberately small and imperfect: the base model that preference optimisation starts from.
Load it with \`StableDiffusionPipeline.fromPretrained('assets/toy/base')\` (or \`lpo generate --model assets/toy/base\`).

| component | architecture | parameters |
| --- | --- | --- |
| vae | AutoencoderKL, blocks ${JSON.stringify(TOY_VAE_CONFIG.block_out_channels)}, 32×32×3 ↔ 8×8×4, scaling factor ${res.scalingFactor.toFixed(5)} | ${n(res.models.vae)} |
| text_encoder | CLIPTextModel, ${TOY_TEXT_ENCODER_CONFIG.num_hidden_layers} layers, width ${TOY_TEXT_ENCODER_CONFIG.hidden_size}, the real CLIP BPE vocabulary (49408 tokens, fp16 storage; the token table is frozen at its seeded init) | ${n(res.models.textEncoder)} |
| unet | UNet2DConditionModel, blocks ${JSON.stringify(TOY_UNET_CONFIG.block_out_channels)}, ${TOY_UNET_CONFIG.layers_per_block} layer per block, self- and cross-attention transformers at the 4×4 level (second down block, mid block, first up block)${cfg.unet ? `; with these config changes: \`${JSON.stringify(cfg.unet)}\`` : ''} | ${n(res.models.unet)} |
| scheduler | DDIM from SD1.5's config (scaled_linear 0.00085 → 0.012, 1000 steps, steps_offset 1) | |

Checkpoint size: ${(r.bytes / 1e6).toFixed(2)} MB.

## How it was made

\`npm run toy:pretrain\` (scripts/toy-pretrain.ts → src/toy/pretrain.ts), seed **${cfg.seed}**, on ${r.machine}.

| stage | settings | wall time |
| --- | --- | --- |
| VAE | ${cfg.vae.steps} steps × ${cfg.vae.batch} fresh renders, AdamW lr ${cfg.vae.lr}, MSE + ${cfg.vae.klWeight}·KL; final MSE ${lastVae?.mse.toFixed(5)}; reconstructions of fresh scenes judged matching: ${(100 * res.reconstruction.matchRate).toFixed(1)}% | ${min(res.seconds.vae)} |
| encode | ${cfg.datasetSize} captioned renders → posterior means and stds | ${min(res.seconds.encode)} |
| text encoder + U-Net | ${cfg.diffusion.steps} steps × ${cfg.diffusion.batch} latents (${cfg.diffusion.promptsPerBatch} prompts per batch), AdamW lr ${cfg.diffusion.lr}, ε-prediction with min-SNR-5 weights, caption dropout ${cfg.diffusion.captionDropout}, EMA 0.999; final loss ${lastDiff?.loss.toFixed(4)} | ${min(res.seconds.diffusion)} |
| total | | ${min(res.seconds.total)} |

The run is deterministic in the seed up to floating-point summation order on the adapter.

## What it does (hidden judge, held-out prompts)

The first 16 held-out prompts (src/toy/captions.ts, HELD_OUT_PROMPTS) × seeds 0–5, 20 DDIM steps (η = 0).
Alignment rate = share of images whose content matches the caption exactly; ± is the standard deviation over
seeds of the per-seed mean.

| guidance | alignment rate | graded alignment | aesthetic | ${cats.join(' | ')} |
| --- | --- | --- | --- | ${cats.map(() => '---').join(' | ')} |
${r.evals.map((e) => `| ${e.guidanceScale} | ${ms(e.summary.alignmentRate)} | ${ms(e.summary.alignmentScore)} | ${ms(e.summary.aesthetic)} | ${cats.map((c) => e.summary.byCategory[c].toFixed(2)).join(' | ')} |`).join('\n')}
`;
}
