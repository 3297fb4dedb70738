// Writes the folder format that openPairFolder reads (see folder.ts for the layout). Rows stream in: each row's
// images are written as it arrives and its JSON line appended to pairs.jsonl.tmp; latents are collected and written
// to latents.safetensors at close (its header precedes the data), then pairs.jsonl appears by an atomic rename, so
// a reader never sees a half-written dataset.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArgumentError } from '../../errors.js';
import { encodePng } from '../image.js';
import { isJpeg } from '../jpeg.js';
import { writeSafetensors, type TensorToWrite } from '../safetensors.js';
import { PairDataError } from './errors.js';
import { LATENTS_FILE, PAIRS_FILE } from './folder.js';
import { isPng } from './image.js';
import { parseRecord, toRecord } from './record.js';
import type { PairGaps, PairLatent, PairSplit } from './types.js';

/** An image to store: encoded PNG/JPEG bytes (written as they are), or CHW floats in [-1, 1] (saved as 8-bit PNG). */
export type ImageToWrite = Uint8Array | { data: Float32Array; height: number; width: number };

export interface PairToWrite {
  caption: string;
  label0: number;
  label1: number;
  numExamplesPerPrompt: number;
  hasLabel?: boolean;
  split?: PairSplit;
  /** Winner − loser (as PairRow.gaps). */
  gaps?: PairGaps;
  image0?: ImageToWrite;
  image1?: ImageToWrite;
  /** [C, h, w] latents, z0 already × the VAE scaling factor. */
  latent0?: PairLatent;
  latent1?: PairLatent;
}

export interface PairFolderWriterOptions {
  /** Replace an existing pairs.jsonl (default false: refuse). */
  overwrite?: boolean;
  /** Storage dtype of latents (default 'F32'). */
  latentDType?: 'F32' | 'F16';
}

const pad = (i: number): string => String(i).padStart(6, '0');

export class PairFolderWriter {
  private count = 0;
  private closed = false;
  private readonly latents: Record<string, TensorToWrite> = {};

  private constructor(
    readonly dir: string,
    private readonly fh: fs.promises.FileHandle,
    private readonly opts: PairFolderWriterOptions,
  ) {}

  static async create(dir: string, opts: PairFolderWriterOptions = {}): Promise<PairFolderWriter> {
    if (!opts.overwrite && fs.existsSync(path.join(dir, PAIRS_FILE))) {
      throw new ArgumentError(`'${dir}' already holds a ${PAIRS_FILE}; pass overwrite to replace it`);
    }
    await fs.promises.mkdir(path.join(dir, 'images'), { recursive: true });
    const fh = await fs.promises.open(path.join(dir, `${PAIRS_FILE}.tmp`), 'w');
    return new PairFolderWriter(dir, fh, opts);
  }

  /** Rows added so far. */
  get rows(): number {
    return this.count;
  }

  /** Writes one pair's images and JSON line; returns its row index. Nothing is written for a pair it rejects. */
  async add(pair: PairToWrite): Promise<number> {
    if (this.closed) throw new ArgumentError('PairFolderWriter: add() after close()');
    const i = this.count;
    const rec = toRecord(pair);
    // The readers' own checks first: what is written here always reads back.
    try {
      parseRecord(rec, { file: PAIRS_FILE, row: i, gapSign: 'winner-loser' }, false);
    } catch (e) {
      throw new ArgumentError(`pair ${i} cannot be written: ${e instanceof PairDataError ? e.problem : String(e)}`);
    }
    const encoded: ({ bytes: Uint8Array; ext: string } | null)[] = [];
    for (const k of [0, 1] as const) {
      if (!pair[`image${k}`] && !pair[`latent${k}`]) throw new ArgumentError(`pair ${i}: needs image${k} or latent${k}`);
      const img = pair[`image${k}`];
      encoded.push(img ? encodeImage(img, `pair ${i}: image${k}`) : null);
      const lat = pair[`latent${k}`];
      if (lat) checkLatent(lat, `pair ${i}: latent${k}`);
    }
    const files: Record<string, string> = {};
    for (const k of [0, 1] as const) {
      const img = encoded[k];
      if (img) {
        const rel = `images/${pad(i)}_${k}.${img.ext}`;
        await fs.promises.writeFile(path.join(this.dir, rel), img.bytes);
        files[`image_${k}`] = rel;
      }
      const lat = pair[`latent${k}`];
      if (lat) files[`latent_${k}`] = this.addLatent(lat, `${pad(i)}_${k}`);
    }
    await this.fh.write(`${JSON.stringify({ caption: pair.caption, ...files, ...rec })}\n`);
    this.count++;
    return i;
  }

  /** Writes the latents and publishes pairs.jsonl. */
  async close(): Promise<{ dir: string; rows: number }> {
    if (this.closed) return { dir: this.dir, rows: this.count };
    this.closed = true;
    await this.fh.sync();
    await this.fh.close();
    if (Object.keys(this.latents).length) await writeSafetensors(path.join(this.dir, LATENTS_FILE), this.latents);
    await fs.promises.rename(path.join(this.dir, `${PAIRS_FILE}.tmp`), path.join(this.dir, PAIRS_FILE));
    return { dir: this.dir, rows: this.count };
  }

  /** Stops without publishing: closes and removes pairs.jsonl.tmp (written images stay). */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
    await fs.promises.rm(path.join(this.dir, `${PAIRS_FILE}.tmp`), { force: true });
  }

  private addLatent(lat: PairLatent, name: string): string {
    this.latents[name] = { dtype: this.opts.latentDType ?? 'F32', shape: [...lat.shape], data: lat.data };
    return name;
  }
}

function encodeImage(img: ImageToWrite, what: string): { bytes: Uint8Array; ext: string } {
  if (img instanceof Uint8Array) {
    if (isPng(img)) return { bytes: img, ext: 'png' };
    if (isJpeg(img)) return { bytes: img, ext: 'jpg' };
    throw new ArgumentError(`${what}: bytes are neither PNG nor JPEG`);
  }
  const { data, height, width } = img;
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0) || data.length !== 3 * height * width) {
    throw new ArgumentError(`${what}: ${data.length} values for a [3, ${height}, ${width}] image`);
  }
  const unit = new Float32Array(data.length);
  for (let j = 0; j < data.length; j++) unit[j] = (data[j] + 1) / 2; // [-1, 1] → [0, 1]
  return { bytes: encodePng(unit, [3, height, width]), ext: 'png' };
}

function checkLatent(lat: PairLatent, what: string): void {
  const n = lat.shape.reduce((a, b) => a * b, 1);
  if (lat.shape.length !== 3 || lat.data.length !== n || n === 0) {
    throw new ArgumentError(`${what}: shape [${lat.shape.join(', ')}] with ${lat.data.length} values; expected [C, h, w]`);
  }
}

/** Writes every pair of `pairs` to a pair folder; returns the row count. */
export async function writePairFolder(
  dir: string,
  pairs: Iterable<PairToWrite> | AsyncIterable<PairToWrite>,
  opts: PairFolderWriterOptions = {},
): Promise<{ dir: string; rows: number }> {
  const w = await PairFolderWriter.create(dir, opts);
  try {
    for await (const p of pairs) await w.add(p);
  } catch (e) {
    await w.abort();
    throw e;
  }
  return w.close();
}
