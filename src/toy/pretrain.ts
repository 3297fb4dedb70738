// The toy base model's whole pre-training, seeded end to end: (1) the VAE on rendered scenes, (2) its latent
// scaling factor, (3) a fixed set of captioned training images encoded once, (4) the text encoder and U-Net on
// those latents, then the diffusers folder. `npm run toy:pretrain` (scripts/toy-pretrain.ts) runs this with the
// defaults and writes assets/toy/base/.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DDIMScheduler } from '../diffusion/ddim.js';
import { loadWeights, saveWeights } from '../io/pretrained.js';
import { CLIPTokenizer } from '../io/tokenizer.js';
import { saveToyPipeline } from './checkpoint.js';
import type { UNet2DConditionConfigJson } from '../nn/unet.js';
import { TOY_SCHEDULER_CONFIG, createToyModels, type ToyModels } from './model.js';
import { encodeDataset, latentScalingFactor, trainVae } from './train_vae.js';
import { trainDiffusion } from './train_diffusion.js';
import { evaluateReconstruction } from './evaluate.js';

export interface PretrainConfig {
  seed: number;
  vae: { steps: number; batch: number; lr: number; klWeight: number };
  /** Captioned images encoded for the diffusion stage. */
  datasetSize: number;
  /** Images whose latents set the VAE scaling factor. */
  scalingSamples: number;
  diffusion: { steps: number; batch: number; promptsPerBatch: number; lr: number; captionDropout: number };
  /** U-Net config fields that differ from TOY_UNET_CONFIG (architecture experiments). */
  unet?: Partial<UNet2DConditionConfigJson>;
}

export const DEFAULT_PRETRAIN: PretrainConfig = {
  seed: 20240601,
  vae: { steps: 1500, batch: 8, lr: 3e-3, klWeight: 1e-4 },
  datasetSize: 12288,
  scalingSamples: 1024,
  diffusion: { steps: 1500, batch: 32, promptsPerBatch: 16, lr: 2e-3, captionDropout: 0.1 },
};

export interface PretrainResult {
  models: ToyModels;
  scalingFactor: number;
  seconds: { vae: number; encode: number; diffusion: number; total: number };
  vaeCurve: { step: number; mse: number; kl: number }[];
  /** The judge's match rate and the MSE of VAE reconstructions of fresh scenes. */
  reconstruction: { matchRate: number; mse: number };
  diffusionCurve: { step: number; loss: number }[];
}

export interface PretrainOptions {
  /** One line per progress report. */
  log?: (line: string) => void;
  /**
   * A folder for intermediate results: the trained VAE (reused by a later run with the same seed and VAE
   * settings, so the diffusion stage can be rerun alone) and snapshots of the EMA weights as loadable folders
   * (`snapshot/`, every `snapshotEvery` diffusion steps).
   */
  workDir?: string;
  snapshotEvery?: number;
}

interface VaeStamp {
  seed: number;
  vae: PretrainConfig['vae'];
  arch: unknown;
  scalingFactor: number;
  seconds: number;
  curve: PretrainResult['vaeCurve'];
  reconstruction: PretrainResult['reconstruction'];
}

/** Runs every stage and writes the folder to `out`. */
export async function pretrainToyBase(out: string, cfg: PretrainConfig = DEFAULT_PRETRAIN, opts: PretrainOptions = {}): Promise<PretrainResult> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const secs = () => (performance.now() - t0) / 1000;
  const models = createToyModels(cfg.seed, { unet: cfg.unet });
  log(`params: vae ${models.vae.numParameters()}, text encoder ${models.textEncoder.numParameters()}, unet ${models.unet.numParameters()}`);

  const v = cfg.vae;
  const stampFile = opts.workDir && path.join(opts.workDir, 'vae.json');
  const old = stampFile && fs.existsSync(stampFile) ? (JSON.parse(fs.readFileSync(stampFile, 'utf8')) as VaeStamp) : null;
  let stamp: VaeStamp;
  const arch = models.vae.toConfig();
  if (old && old.seed === cfg.seed && JSON.stringify(old.vae) === JSON.stringify(v) && JSON.stringify(old.arch) === JSON.stringify(arch)) {
    await loadWeights(models.vae, path.join(opts.workDir!, 'vae', 'diffusion_pytorch_model.safetensors'));
    stamp = old;
    log(`vae: reusing ${path.join(opts.workDir!, 'vae')} (trained in ${(old.seconds / 60).toFixed(1)} min)`);
  } else {
    const curve = await trainVae(models.vae, {
      steps: v.steps, batch: v.batch, lr: v.lr, klWeight: v.klWeight, seed: cfg.seed + 1,
      onLog: (r) => log(`vae step ${r.step}/${v.steps}: mse ${r.mse.toFixed(5)} kl ${r.kl.toFixed(3)} lr ${r.lr.toExponential(2)} (${secs().toFixed(0)} s)`),
    });
    const seconds = secs();
    const reconstruction = await evaluateReconstruction(models.vae, 256, cfg.seed + 5);
    const scalingFactor = await latentScalingFactor(models.vae, cfg.scalingSamples, cfg.seed + 2);
    stamp = { seed: cfg.seed, vae: v, arch, scalingFactor, seconds, curve, reconstruction };
    if (opts.workDir) {
      models.vae.config.scalingFactor = scalingFactor;
      await saveWeights(models.vae, path.join(opts.workDir, 'vae', 'diffusion_pytorch_model.safetensors'));
      fs.writeFileSync(stampFile!, `${JSON.stringify(stamp)}\n`);
    }
  }
  const { scalingFactor, curve: vaeCurve, reconstruction: recon } = stamp;
  const tVae = stamp.seconds;
  log(`vae reconstructions: judge match rate ${recon.matchRate.toFixed(3)}, mse ${recon.mse.toFixed(5)} (256 fresh scenes)`);
  models.vae.config.scalingFactor = scalingFactor;
  log(`vae scaling factor ${scalingFactor.toFixed(5)}`);
  models.vae.freeze();
  const tEncodeStart = secs();
  const data = await encodeDataset(models.vae, cfg.datasetSize, cfg.seed + 3, {
    onProgress: (n) => { if (n % 4096 === 0 || n === cfg.datasetSize) log(`encoded ${n}/${cfg.datasetSize} training images (${secs().toFixed(0)} s)`); },
  });
  const tEncode = secs();

  const d = cfg.diffusion;
  const diffusionCurve = await trainDiffusion(
    { textEncoder: models.textEncoder, unet: models.unet, tokenizer: CLIPTokenizer.fromFile(), scheduler: new DDIMScheduler(TOY_SCHEDULER_CONFIG) },
    data,
    {
      steps: d.steps, batch: d.batch, promptsPerBatch: d.promptsPerBatch, lr: d.lr, seed: cfg.seed + 4, captionDropout: d.captionDropout,
      onLog: (r) => {
        const el = secs() - tEncode;
        const eta = (el / r.step) * (d.steps - r.step);
        log(`diffusion step ${r.step}/${d.steps}: loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} (${secs().toFixed(0)} s, ~${(eta / 60).toFixed(0)} min left)`);
      },
      snapshotEvery: opts.workDir ? opts.snapshotEvery ?? 500 : undefined,
      onSnapshot: async (step, w) => {
        const dir = path.join(opts.workDir!, 'snapshot');
        await saveToyPipeline(models, dir, w);
        fs.writeFileSync(path.join(dir, 'step.txt'), `${step}\n`);
        log(`snapshot of step ${step} in ${dir}`);
      },
    },
  );
  const tDiff = secs();
  await saveToyPipeline(models, out);
  log(`saved ${out}`);
  return {
    models, scalingFactor, vaeCurve, diffusionCurve, reconstruction: recon,
    // A reused VAE counts with the time it took when it was trained.
    seconds: { vae: tVae, encode: tEncode - tEncodeStart, diffusion: tDiff - tEncode, total: tVae + (secs() - tEncodeStart) },
  };
}
