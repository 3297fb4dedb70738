// A diffusers-layout Stable Diffusion folder assembled from the golden tiny components (test/fixtures/golden):
// what `lpo generate`, the README example and the packed-package test load. A few MB, 16×16 images by default.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..');
export const GOLDEN = [join(ROOT, 'test/fixtures/golden'), resolve(ROOT, '../shared/golden')].find((d) => existsSync(join(d, 'manifest.json')))!;

/** Writes the folder at `dir` (created) and returns it. */
export function writeTinySd(dir: string): string {
  const put = (sub: string, files: [string, string][]) => {
    mkdirSync(join(dir, sub), { recursive: true });
    for (const [from, to] of files) copyFileSync(from, join(dir, sub, to));
  };
  put('text_encoder', [[join(GOLDEN, 'text_encoder/config.json'), 'config.json'], [join(GOLDEN, 'text_encoder/weights.safetensors'), 'model.safetensors']]);
  put('unet', [[join(GOLDEN, 'unet/config.json'), 'config.json'], [join(GOLDEN, 'unet/weights.safetensors'), 'diffusion_pytorch_model.safetensors']]);
  put('vae', [[join(GOLDEN, 'vae/config.json'), 'config.json'], [join(GOLDEN, 'vae/weights.safetensors'), 'diffusion_pytorch_model.safetensors']]);
  put('scheduler', [[join(GOLDEN, 'ddim/scheduler_config.json'), 'scheduler_config.json']]);
  put('tokenizer', [[join(ROOT, 'assets/bpe_simple_vocab_16e6.txt.gz'), 'bpe_simple_vocab_16e6.txt.gz']]);
  writeFileSync(join(dir, 'model_index.json'), JSON.stringify({
    _class_name: 'StableDiffusionPipeline',
    text_encoder: ['transformers', 'CLIPTextModel'], tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'], scheduler: ['diffusers', 'PNDMScheduler'],
    safety_checker: [null, null],
  }));
  return dir;
}
