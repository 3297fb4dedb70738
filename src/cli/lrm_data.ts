// What the LRM commands share: the VAE that encodes image rows, opening pair data at the model's resolution,
// and the accuracy-by-timestep table.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../errors.js';
import { AutoencoderKL } from '../nn/vae.js';
import { openPairs, type OpenPairsOptions, type PairDataset, type PairSplit } from '../io/pairs/index.js';
import type { LatentRewardModel } from '../lrm/model.js';
import type { LrmEvalResult } from '../lrm/eval.js';

/** The base model's frozen VAE (`<model>/vae`), or null when the folder has none. */
export async function loadVae(modelDir: string | null | undefined): Promise<AutoencoderKL | null> {
  if (!modelDir) return null;
  const dir = path.join(modelDir, 'vae');
  if (!fs.existsSync(path.join(dir, 'config.json'))) return null;
  const vae = await AutoencoderKL.fromPretrained(dir);
  vae.freeze();
  return vae;
}

/** Image side length the model takes: its latent size × the VAE's downsampling (8 for SD). */
export function modelResolution(model: LatentRewardModel, vae: AutoencoderKL | null): number {
  return model.config.sampleSize * (vae ? vae.downsampleFactor : 8);
}

/** Opens pair data (a pair folder, a .parquet file or a folder of shards) at the model's resolution. */
export async function openLrmPairs(
  p: string,
  model: LatentRewardModel,
  vae: AutoencoderKL | null,
  opts: { split?: PairSplit; skipBad?: boolean; gapsCsv?: string; onSkip?: (e: Error) => void } = {},
): Promise<PairDataset> {
  const isFolder = fs.existsSync(path.join(p, 'pairs.jsonl'));
  const o: OpenPairsOptions = {
    resolution: modelResolution(model, vae),
    skipBad: opts.skipBad,
    onSkip: opts.onSkip,
    ...(opts.gapsCsv ? { gapsCsv: opts.gapsCsv } : {}),
  };
  if (isFolder) {
    o.split = opts.split;
    o.latentShape = [model.unet.config.inChannels, model.config.sampleSize, model.config.sampleSize];
  }
  return openPairs(p, o);
}

/** --gaps-csv belongs to parquet data; a pair folder keeps its gaps in pairs.jsonl (checked before anything loads). */
export function gapsCsvProblem(data: string, gapsCsv: string | undefined): string | null {
  return gapsCsv !== undefined && fs.existsSync(path.join(data, 'pairs.jsonl')) ? `--gaps-csv applies to parquet --data; '${data}' is a pair folder (its gaps live in pairs.jsonl)` : null;
}

/** Parses `--timesteps 1,501,951` (or 'all' for the 20-step grid). */
export function parseTimesteps(items: readonly string[] | undefined, all: readonly number[], flag: string): number[] | undefined {
  if (!items) return undefined;
  if (items.length === 1 && items[0] === 'all') return [...all];
  return items.map((s) => {
    const t = Number(s);
    if (!Number.isInteger(t) || t < 0 || t > 999) throw new UsageError(`${flag}: '${s}' is not a timestep in [0, 999]`);
    return t;
  });
}

/** The per-timestep accuracy table (and the mean over the timesteps). */
export function accuracyTable(r: LrmEvalResult): string {
  const lines = ['timestep  accuracy', '--------  --------'];
  for (const e of r.byTimestep) lines.push(`${String(e.t).padStart(8)}  ${(100 * e.accuracy).toFixed(1).padStart(7)}%`);
  if (r.byTimestep.length > 1) {
    const mean = r.byTimestep.reduce((s, e) => s + e.accuracy, 0) / r.byTimestep.length;
    lines.push(`${'mean'.padStart(8)}  ${(100 * mean).toFixed(1).padStart(7)}%`);
  }
  return lines.join('\n');
}
