// Writes the toy base model as a diffusers Stable Diffusion folder: model_index.json, scheduler/, tokenizer/
// (the CLIP BPE files in Hugging Face's form: merges.txt, vocab.json, tokenizer_config.json,
// special_tokens_map.json), text_encoder/, unet/ and vae/ (config.json + safetensors). The text encoder is
// stored in fp16 (`model.fp16.safetensors`, transformers' variant name): its 49408-row token table is most of
// the checkpoint. The U-Net and VAE are small and stay f32.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { TokenizerError, findAsset, MAX_LENGTH, NUM_MERGES, VOCAB_FILE, CLIPTokenizer } from '../io/tokenizer.js';
import { saveWeights } from '../io/pretrained.js';
import type { Tensor } from '../tensor/tensor.js';
import { TOY_MODEL_INDEX, TOY_SCHEDULER_CONFIG, type ToyModels } from './model.js';

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/** The CLIP BPE vocabulary as Hugging Face tokenizer files. */
export function writeTokenizerFolder(dir: string): void {
  const src = findAsset(VOCAB_FILE);
  if (!src) throw new TokenizerError(`cannot find assets/${VOCAB_FILE}`);
  const lines = gunzipSync(fs.readFileSync(src)).toString('utf8').split('\n').slice(1, NUM_MERGES + 1);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'merges.txt'), `#version: 0.2\n${lines.join('\n')}\n`);
  const tok = new CLIPTokenizer(lines);
  fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(Object.fromEntries(tok.encoder)));
  const special = { bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', pad_token: '<|endoftext|>', unk_token: '<|endoftext|>' };
  fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), json(special));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), json({
    ...special, add_prefix_space: false, clean_up_tokenization_spaces: true, do_lower_case: true, errors: 'replace',
    model_max_length: MAX_LENGTH, tokenizer_class: 'CLIPTokenizer',
  }));
}

/** Weights to write instead of a model's live parameters (e.g. an EMA), by state-dict name. */
export interface WeightOverrides {
  textEncoder?: ReadonlyMap<string, Tensor>;
  unet?: ReadonlyMap<string, Tensor>;
}

/** One component folder: config.json (the model's toConfig()) and its weights, from `weights` when given. */
async function saveComponent(model: ToyModels[keyof ToyModels], dir: string, file: string, dtype: 'F32' | 'F16', weights?: ReadonlyMap<string, Tensor>): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), json(model.toConfig()));
  await saveWeights(weights ?? model, path.join(dir, file), { dtype });
}

/**
 * Writes the whole folder: model_index.json, scheduler/, tokenizer/, and each model's config.json (its
 * toConfig(), the VAE's with its scaling factor) and weights — the text encoder as fp16
 * `model.fp16.safetensors`, the U-Net and VAE as f32 `diffusion_pytorch_model.safetensors`.
 */
export async function saveToyPipeline(models: ToyModels, dir: string, overrides: WeightOverrides = {}): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model_index.json'), json(TOY_MODEL_INDEX));
  fs.mkdirSync(path.join(dir, 'scheduler'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'scheduler', 'scheduler_config.json'), json(TOY_SCHEDULER_CONFIG));
  writeTokenizerFolder(path.join(dir, 'tokenizer'));
  await saveComponent(models.textEncoder, path.join(dir, 'text_encoder'), 'model.fp16.safetensors', 'F16', overrides.textEncoder);
  await saveComponent(models.unet, path.join(dir, 'unet'), 'diffusion_pytorch_model.safetensors', 'F32', overrides.unet);
  await saveComponent(models.vae, path.join(dir, 'vae'), 'diffusion_pytorch_model.safetensors', 'F32');
}

/** Total size in bytes of the files under a folder. */
export function folderBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? folderBytes(p) : fs.statSync(p).size;
  }
  return n;
}
