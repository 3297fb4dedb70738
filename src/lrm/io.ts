// LRM folders and base models.
//
//   <lrm>/config.json                      the LRM's own settings (config.ts), base model, format version
//   <lrm>/unet/                            the truncated U-Net (config.json of the base U-Net, down/mid weights only)
//   <lrm>/text_encoder/                    the trained CLIP text encoder (transformers layout)
//   <lrm>/heads.safetensors                text_projection.weight, visual_projection.weight, logit_scale
//   <lrm>/tokenizer/                       the BPE merges the model was trained with
//   <lrm>/scheduler/scheduler_config.json  the noise schedule (when known)
//
// The reference code saves unet/, text_encoder/ and a state_dict.pt of the three heads; this is the same split
// with safetensors. A folder is written next to its destination, fsynced and renamed into place, so a crash
// mid-save leaves the previous checkpoint intact (training checkpoints with hashes are src/lrm/checkpoint.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArgumentError } from '../errors.js';
import { gpu } from '../gpu/runtime.js';
import { withoutInit } from '../nn/init.js';
import { CLIPTextModel } from '../nn/clip.js';
import { StateDictError } from '../nn/state_dict.js';
import type { UNet2DConditionModel } from '../nn/unet.js';
import { CLIPTokenizer, findAsset, VOCAB_FILE } from '../io/tokenizer.js';
import { openDiffusersModel } from '../io/diffusers.js';
import { saveWeights } from '../io/pretrained.js';
import { DiffusersError, openWeights, readJson } from '../io/weights.js';
import { fsyncPath, fsyncTree } from '../io/checkpoint/index.js';
import { lrmConfigToJson, parseLrmConfig, type LrmConfig } from './config.js';
import type { LatentRewardModel, LrmParts } from './model.js';
import { loadTruncatedUNet, truncatedCopy } from './truncated.js';

export const HEADS_FILE = 'heads.safetensors';
const HEAD_KEYS = ['text_projection.weight', 'visual_projection.weight', 'logit_scale'] as const;
const FORMAT = 1;

/** The merges file of a tokenizer folder (merges.txt or CLIP's bpe_simple_vocab_16e6.txt.gz), or null. */
export function findTokenizerFile(dir: string): string | null {
  for (const f of ['merges.txt', VOCAB_FILE]) {
    const p = path.join(dir, f);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/** Writes `dir` through a sibling temporary folder renamed into place (the old folder is removed after the swap). */
export async function writeFolderAtomically(dir: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const stamp = `${process.pid}-${Date.now().toString(36)}`;
  const tmp = `${dir}.tmp-${stamp}`;
  fs.mkdirSync(tmp, { recursive: true });
  try {
    await write(tmp);
    fsyncTree(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (fs.existsSync(dir)) {
    const old = `${dir}.old-${stamp}`;
    fs.renameSync(dir, old);
    fs.renameSync(tmp, dir);
    fs.rmSync(old, { recursive: true, force: true });
  } else fs.renameSync(tmp, dir);
  fsyncPath(path.dirname(path.resolve(dir)));
}

/** Copies every parameter of `src` into `dst` (same keys and shapes) on the GPU. */
function copyParameters(src: { stateDict(): Map<string, { buffer: GPUBuffer; bytes: number }> }, dst: CLIPTextModel): void {
  const from = src.stateDict();
  for (const [k, p] of dst.stateDict()) {
    const s = from.get(k);
    if (!s || s.bytes !== p.bytes) throw new ArgumentError(`copy of the text encoder: parameter '${k}' differs`);
    gpu().copy(s.buffer, 0, p.buffer, 0, p.bytes);
  }
}

/** Saves an LRM folder (see the file comment). */
export async function saveLrm(model: LatentRewardModel, dir: string): Promise<void> {
  await writeFolderAtomically(dir, async (tmp) => {
    const extra: Record<string, unknown> = { format: FORMAT };
    if (model.baseModel) extra.base_model = model.baseModel;
    fs.writeFileSync(path.join(tmp, 'config.json'), `${JSON.stringify(lrmConfigToJson(model.config, extra), null, 2)}\n`);
    await model.unet.savePretrained(path.join(tmp, 'unet'));
    await model.textEncoder.savePretrained(path.join(tmp, 'text_encoder'));
    const heads = new Map(HEAD_KEYS.map((k) => [k, model.stateDict().get(k)!] as const));
    await saveWeights(heads, path.join(tmp, HEADS_FILE));
    const tok = model.tokenizerFile ?? findAsset(VOCAB_FILE);
    if (tok) {
      fs.mkdirSync(path.join(tmp, 'tokenizer'));
      fs.copyFileSync(tok, path.join(tmp, 'tokenizer', path.basename(tok)));
    }
    if (model.schedulerConfig) {
      fs.mkdirSync(path.join(tmp, 'scheduler'));
      fs.writeFileSync(path.join(tmp, 'scheduler', 'scheduler_config.json'), `${JSON.stringify(model.schedulerConfig, null, 2)}\n`);
    }
  });
}

function tokenizerOf(dir: string | null): { tokenizer: CLIPTokenizer; tokenizerFile?: string } {
  const file = dir ? findTokenizerFile(dir) : null;
  if (dir && !file) throw new DiffusersError(dir, 'the tokenizer folder has no merges.txt or bpe_simple_vocab_16e6.txt.gz');
  return { tokenizer: CLIPTokenizer.fromFile(file ?? undefined), tokenizerFile: file ?? undefined };
}

function optionalJson(file: string): Record<string, unknown> | undefined {
  return fs.existsSync(file) ? readJson(file) : undefined;
}

/** The parts of a saved LRM folder (the heads are loaded afterwards with loadHeads). */
export async function loadLrmParts(dir: string): Promise<{ parts: LrmParts; headsFile: string }> {
  const cfgFile = path.join(dir, 'config.json');
  const json = readJson(cfgFile);
  const config = parseLrmConfig(json, cfgFile);
  const headsFile = path.join(dir, HEADS_FILE);
  if (!fs.existsSync(headsFile)) throw new DiffusersError(headsFile, 'missing: not an LRM folder (saved by LatentRewardModel.save)');
  const tok = tokenizerOf(fs.existsSync(path.join(dir, 'tokenizer')) ? path.join(dir, 'tokenizer') : null);
  const unet = await loadTruncatedUNet(path.join(dir, 'unet'));
  let textEncoder: CLIPTextModel;
  try {
    textEncoder = await CLIPTextModel.fromPretrained(path.join(dir, 'text_encoder'));
  } catch (e) {
    unet.dispose();
    throw e;
  }
  const parts: LrmParts = {
    unet, textEncoder, ...tok, config,
    schedulerConfig: optionalJson(path.join(dir, 'scheduler', 'scheduler_config.json')),
    baseModel: typeof json.base_model === 'string' ? json.base_model : undefined,
  };
  return { parts, headsFile };
}

/** Writes text_projection.weight, visual_projection.weight and logit_scale from a heads file (all three, exact shapes). */
export async function loadHeads(model: LatentRewardModel, file: string): Promise<void> {
  const r = await openWeights(file);
  try {
    const own = model.stateDict();
    const keys = r.keys();
    const missing = HEAD_KEYS.filter((k) => !keys.includes(k));
    const unexpected = keys.filter((k) => !(HEAD_KEYS as readonly string[]).includes(k));
    const wrongShape = HEAD_KEYS.filter((k) => keys.includes(k))
      .map((k) => ({ key: k, expected: [...own.get(k)!.shape], got: [...r.info(k).shape] }))
      .filter((m) => m.expected.join() !== m.got.join() && !(m.expected.length === 0 && m.got.join() === '1'));
    if (missing.length || unexpected.length || wrongShape.length) throw new StateDictError({ missing, unexpected, wrongShape }, `LRM heads '${file}'`);
    for (const k of HEAD_KEYS) own.get(k)!.write(await r.readF32(k));
  } finally {
    await r.close();
  }
}

export interface FromDiffusersOptions {
  /** Overrides of the LRM settings (vfeWeight, featureIndices, projectionDim, ...). */
  config?: Partial<LrmConfig>;
  /** A CLIP checkpoint (.safetensors) holding `text_projection.weight` [projectionDim, hidden] to start text_projection from. */
  clipTextProjection?: string;
  /** Seed of the N(0, 0.02²) projection init. */
  seed?: number;
  preferFp16?: boolean;
}

/** Components of an already-loaded base model (e.g. a StableDiffusionPipeline's); they are copied, not taken. */
export interface BaseComponents {
  unet: UNet2DConditionModel;
  textEncoder: CLIPTextModel;
  tokenizer: CLIPTokenizer;
  tokenizerFile?: string;
  schedulerConfig?: Record<string, unknown>;
  scalingFactor?: number;
}

async function readTextProjection(file: string): Promise<Float32Array> {
  const r = await openWeights(file);
  try {
    if (!r.has('text_projection.weight')) throw new DiffusersError(file, "has no 'text_projection.weight'");
    return await r.readF32('text_projection.weight');
  } finally {
    await r.close();
  }
}

/** LrmParts initialised from a base model: a diffusers SD folder (unet/, text_encoder/, tokenizer/, scheduler/, vae/) or loaded components. */
export async function partsFromDiffusers(src: string | BaseComponents, opts: FromDiffusersOptions = {}): Promise<LrmParts> {
  const textProjection = opts.clipTextProjection ? await readTextProjection(opts.clipTextProjection) : undefined;
  const common = { textProjection, seed: opts.seed };
  if (typeof src !== 'string') {
    const textEncoder = withoutInit(() => new CLIPTextModel(src.textEncoder.config));
    copyParameters(src.textEncoder, textEncoder);
    const scaling = src.scalingFactor !== undefined ? { scalingFactor: src.scalingFactor } : {};
    return {
      unet: truncatedCopy(src.unet), textEncoder,
      tokenizer: src.tokenizer, tokenizerFile: src.tokenizerFile, schedulerConfig: src.schedulerConfig,
      config: { ...scaling, ...opts.config }, ...common,
    };
  }
  const folder = await openDiffusersModel(src, { openWeights: false });
  await folder.close(); // only located
  const tokDir = folder.components.get('tokenizer')?.dir ?? null;
  const tok = tokenizerOf(tokDir);
  const vaeCfg = folder.components.get('vae')?.config;
  const scaling = typeof vaeCfg?.scaling_factor === 'number' ? { scalingFactor: vaeCfg.scaling_factor } : {};
  const unet = await loadTruncatedUNet(folder.get('unet').dir, { preferFp16: opts.preferFp16 });
  let textEncoder: CLIPTextModel;
  try {
    textEncoder = await CLIPTextModel.fromPretrained(folder.get('text_encoder').dir, { preferFp16: opts.preferFp16 });
  } catch (e) {
    unet.dispose();
    throw e;
  }
  return {
    unet, textEncoder, ...tok, ...common,
    schedulerConfig: folder.components.get('scheduler')?.config ?? undefined,
    baseModel: path.resolve(src),
    config: { ...scaling, ...opts.config },
  };
}
