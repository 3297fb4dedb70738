// LoRA files: safetensors in the key format diffusers' `load_lora_weights` reads for an SD1.5 U-Net.
//
//   unet.<module path>.lora_A.weight  [r, in]   (PEFT lora_A; diffusers' older spelling `.lora.down.weight`)
//   unet.<module path>.lora_B.weight  [out, r]  (PEFT lora_B; older `.lora.up.weight`)
//
// e.g. `unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight`. There are no alpha
// entries: diffusers then sets alpha = rank (scale 1). When our alpha differs, `__metadata__` carries
// `lora_alpha` (contract 4 of the wave plan), which we read back; `format: pt` is written as torch does.
import { renameSync, rmSync } from 'node:fs';
import { FileFormatError } from '../errors.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from './safetensors.js';
import { addLoRA, loraLayers } from '../nn/lora.js';
import type { Module } from '../nn/module.js';

/** The module-path prefix the file uses for a U-Net's layers. */
export const LORA_UNET_PREFIX = 'unet';

const NEW_SUFFIX = { A: '.lora_A.weight', B: '.lora_B.weight' } as const;
const OLD_SUFFIX = { A: '.lora.down.weight', B: '.lora.up.weight' } as const;

/** File key of one factor of the layer at `path`. */
export function loraKey(path: string, factor: 'A' | 'B', prefix = LORA_UNET_PREFIX): string {
  return `${prefix ? `${prefix}.` : ''}${path}${NEW_SUFFIX[factor]}`;
}

/** Splits a file key into (module path, factor), accepting both spellings; null for anything else. */
export function parseLoraKey(key: string, prefix = LORA_UNET_PREFIX): { path: string; factor: 'A' | 'B' } | null {
  const p = prefix ? `${prefix}.` : '';
  if (!key.startsWith(p)) return null;
  const rest = key.slice(p.length);
  for (const factor of ['A', 'B'] as const) {
    for (const suf of [NEW_SUFFIX[factor], OLD_SUFFIX[factor]]) {
      if (rest.endsWith(suf) && rest.length > suf.length) return { path: rest.slice(0, -suf.length), factor };
    }
  }
  return null;
}

/** Reads the factors back to the host as file entries (keys in module order, A then B). */
export async function loraStateDict(model: Module, prefix = LORA_UNET_PREFIX): Promise<Record<string, TensorToWrite>> {
  const out: Record<string, TensorToWrite> = {};
  const layers = loraLayers(model);
  if (layers.length === 0) throw new FileFormatError('<lora>', 'the model has no LoRA adapters to save');
  for (const [path, l] of layers) {
    out[loraKey(path, 'A', prefix)] = { dtype: 'F32', shape: l.loraA.shape, data: await l.loraA.toArray() };
    out[loraKey(path, 'B', prefix)] = { dtype: 'F32', shape: l.loraB.shape, data: await l.loraB.toArray() };
  }
  return out;
}

function metadataFor(model: Module): Record<string, string> {
  const layers = loraLayers(model).map(([, l]) => l);
  const meta: Record<string, string> = { format: 'pt' };
  if (layers.some((l) => l.alpha !== l.rank)) {
    const alphas = new Set(layers.map((l) => l.alpha));
    if (alphas.size > 1) throw new FileFormatError('<lora>', `the adapters have different alphas (${[...alphas].join(', ')}); a LoRA file carries one`);
    meta.lora_alpha = String(layers[0].alpha);
  }
  return meta;
}

/** Writes the adapters to `file` (to a temporary name first, renamed into place: a crash leaves no half file). */
export async function saveLoRA(model: Module, file: string, prefix = LORA_UNET_PREFIX): Promise<void> {
  const tensors = await loraStateDict(model, prefix);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await writeSafetensors(tmp, tensors, metadataFor(model));
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

interface FileLayer { A?: string; B?: string }

function scanFile(f: SafetensorsFile, prefix: string): { layers: Map<string, FileLayer>; alpha: number | null } {
  const layers = new Map<string, FileLayer>();
  const bad: string[] = [];
  for (const key of f.keys()) {
    const k = parseLoraKey(key, prefix);
    if (!k) { bad.push(key); continue; }
    const e = layers.get(k.path) ?? {};
    if (e[k.factor]) throw new FileFormatError(f.path, `layer '${k.path}' has lora_${k.factor} twice (${e[k.factor]} and ${key})`);
    e[k.factor] = key;
    layers.set(k.path, e);
  }
  if (bad.length) {
    throw new FileFormatError(f.path, `keys that are not ${prefix}.<module>.lora_A/lora_B.weight (or .lora.down/.lora.up.weight): ${bad.slice(0, 5).join(', ')}${bad.length > 5 ? `, … (${bad.length})` : ''}`);
  }
  if (layers.size === 0) throw new FileFormatError(f.path, 'holds no LoRA tensors');
  for (const [p, e] of layers) if (!e.A || !e.B) throw new FileFormatError(f.path, `layer '${p}' has lora_${e.A ? 'A' : 'B'} but no lora_${e.A ? 'B' : 'A'}`);
  const a = f.metadata.lora_alpha;
  let alpha: number | null = null;
  if (a !== undefined) {
    alpha = Number(a);
    if (!(alpha > 0) || !Number.isFinite(alpha)) throw new FileFormatError(f.path, `__metadata__ lora_alpha '${a}' is not a positive number`);
  }
  return { layers, alpha };
}

/**
 * Loads a LoRA file into the model's existing adapters, strictly: every adapter gets both factors, every
 * file entry belongs to an adapter, shapes match exactly, and the file's alpha (rank when absent) equals
 * the adapter's.
 */
export async function loadLoRA(model: Module, file: string, prefix = LORA_UNET_PREFIX): Promise<void> {
  const f = SafetensorsFile.openSync(file);
  try {
    const { layers, alpha } = scanFile(f, prefix);
    const own = new Map(loraLayers(model));
    if (own.size === 0) throw new FileFormatError(file, 'the model has no LoRA adapters to load into (use injectLoRAFromFile)');
    const missing = [...own.keys()].filter((p) => !layers.has(p));
    const extra = [...layers.keys()].filter((p) => !own.has(p));
    if (missing.length || extra.length) {
      const list = (xs: string[]) => `${xs.slice(0, 4).join(', ')}${xs.length > 4 ? `, … (${xs.length})` : ''}`;
      throw new FileFormatError(file, [missing.length ? `no factors for adapters ${list(missing)}` : '', extra.length ? `factors for layers without an adapter: ${list(extra)}` : ''].filter(Boolean).join('; '));
    }
    for (const [path, e] of layers) {
      const l = own.get(path)!;
      const fileAlpha = alpha ?? f.info(e.B!).shape[1];
      if (fileAlpha !== l.alpha) throw new FileFormatError(file, `layer '${path}': alpha ${fileAlpha} in the file, ${l.alpha} in the adapter`);
      for (const [key, t] of [[e.A!, l.loraA], [e.B!, l.loraB]] as const) {
        const s = f.info(key).shape;
        if (s.join() !== t.shape.join()) throw new FileFormatError(file, `'${key}' has shape [${s}], the adapter expects [${t.shape}]`);
        t.write(f.readF32Sync(key));
      }
    }
  } finally {
    f.closeSync();
  }
}

/**
 * Adds adapters to a plain model exactly where the file has factors (rank from lora_B's shape, alpha from
 * the metadata or = rank, as diffusers does) and loads them. Returns the adapted module paths.
 */
export async function injectLoRAFromFile(model: Module, file: string, prefix = LORA_UNET_PREFIX): Promise<string[]> {
  const f = SafetensorsFile.openSync(file);
  let paths: Set<string>;
  let rank: number;
  let alpha: number | null;
  try {
    const scan = scanFile(f, prefix);
    alpha = scan.alpha;
    const ranks = new Set([...scan.layers.values()].map((e) => f.info(e.B!).shape[1]));
    if (ranks.size !== 1) throw new FileFormatError(file, `mixed LoRA ranks (${[...ranks].join(', ')}) are not supported`);
    rank = [...ranks][0];
    paths = new Set(scan.layers.keys());
  } finally {
    f.closeSync();
  }
  const names = addLoRA(model, { rank, alpha: alpha ?? rank, targets: [...paths] });
  const missed = [...paths].filter((p) => !names.includes(p));
  if (missed.length) throw new FileFormatError(file, `no Linear layer of the model at ${missed.slice(0, 4).join(', ')}`);
  await loadLoRA(model, file, prefix);
  return names;
}
