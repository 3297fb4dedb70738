// A diffusers Stable Diffusion folder (model_index.json, unet/, vae/, text_encoder/, scheduler/) made from the
// golden components, for the tests of StableDiffusionPipeline.fromPretrained. The component folders are links to
// the golden ones unless `copy` names some (so a test may break their files). No tokenizer/: the bundled one.
import * as fs from 'node:fs';
import * as path from 'node:path';

export function makeSdFolder(root: string, golden: string, copy: readonly string[] = []): string {
  fs.mkdirSync(path.join(root, 'scheduler'), { recursive: true });
  fs.writeFileSync(path.join(root, 'model_index.json'), JSON.stringify({
    _class_name: 'StableDiffusionPipeline',
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
    text_encoder: ['transformers', 'CLIPTextModel'],
    scheduler: ['diffusers', 'DDIMScheduler'],
    safety_checker: [null, null],
  }));
  fs.copyFileSync(path.join(golden, 'ddim/scheduler_config.json'), path.join(root, 'scheduler/scheduler_config.json'));
  for (const c of ['unet', 'vae', 'text_encoder']) {
    if (!copy.includes(c)) {
      fs.symlinkSync(path.join(golden, c), path.join(root, c), 'dir');
      continue;
    }
    fs.mkdirSync(path.join(root, c));
    for (const f of ['config.json', 'weights.safetensors']) fs.copyFileSync(path.join(golden, c, f), path.join(root, c, f));
  }
  return root;
}
