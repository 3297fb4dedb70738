// The plain folder format (contract 3): <dir>/pairs.jsonl, one JSON object a line, with images (PNG or JPEG) at
// paths relative to <dir> and, optionally, pre-encoded latents so the trainer can skip the VAE:
//
//   {"caption": "...", "image_0": "images/000000_0.png", "image_1": "images/000000_1.png",
//    "latent_0": "000000_0", "latent_1": "000000_1",          ← optional: tensor names in <dir>/latents.safetensors
//    "label_0": 1, "label_1": 0, "num_example_per_prompt": 1, "has_label": true, "split": "train",
//    "aesthetic_gap": 0.3, "clipscore_gap": 0.01, "vqascore_gap": 0.1, "different_flag": 1}
//
// A row needs, for each image, `image_k` or `latent_k` (or both). Latents are [C, h, w] (or [1, C, h, w]) float
// tensors, z0 already × the VAE's scaling factor; every latent must have the same shape (or `latentShape`).
// A row without `split` belongs to 'train'; `has_label` defaults to true. Gaps are winner − loser as in the authors'
// CSV (`gapSign: 'image0-image1'` reads files that store image_0 − image_1 and flips rows whose image_1 wins).
//
// Streaming: opening indexes the byte offset of every line (8 bytes a row); each row is then read by one positioned
// read, so memory does not grow with the dataset and a seeded shuffle can visit rows in any order.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArgumentError } from '../../errors.js';
import { SafetensorsError, SafetensorsFile } from '../safetensors.js';
import { PairDataError, messageOf } from './errors.js';
import { loadModelImage } from './image.js';
import { parseRecord, rowError, type RecordContext } from './record.js';
import { PairSource, permutation, type Pixels, type ScanItem, type SourceOptions, type Wanted } from './source.js';
import type { GapSign, PairLatent, PairSplit } from './types.js';

export const PAIRS_FILE = 'pairs.jsonl';
export const LATENTS_FILE = 'latents.safetensors';
const LATENT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

export interface FolderPairsOptions extends Omit<SourceOptions, 'splits'> {
  /** Yield only rows of this split (or these splits). */
  split?: PairSplit | readonly PairSplit[];
  /** Required latent shape, e.g. [4, 64, 64]. Default: the shape of the first latent read. */
  latentShape?: readonly number[];
}

interface LineIndex {
  /** Byte offset, byte length and 1-based line number of each non-blank line (= each row). */
  start: number[];
  length: number[];
  line: number[];
}

/** Finds the non-blank lines of a file in one streaming pass. */
async function indexLines(file: string): Promise<LineIndex> {
  const start: number[] = [];
  const length: number[] = [];
  const line: number[] = [];
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PairDataError(file, null, code === 'ENOENT' ? `no ${PAIRS_FILE} (is this a pair folder?)` : `cannot read: ${code ?? messageOf(e)}`);
  }
  try {
    const buf = Buffer.alloc(1 << 20);
    let pos = 0, lineStart = 0, lineNo = 1, blank = true;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      for (let i = 0; i < bytesRead; i++) {
        const b = buf[i];
        if (b === 0x0a) {
          if (!blank) { start.push(lineStart); length.push(pos + i - lineStart); line.push(lineNo); }
          lineStart = pos + i + 1;
          lineNo++;
          blank = true;
        } else if (b !== 0x20 && b !== 0x09 && b !== 0x0d) {
          blank = false;
        }
      }
      pos += bytesRead;
    }
    if (!blank) { start.push(lineStart); length.push(pos - lineStart); line.push(lineNo); }
  } catch (e) {
    throw new PairDataError(file, null, `cannot read: ${(e as NodeJS.ErrnoException).code ?? messageOf(e)}`);
  } finally {
    await fh.close();
  }
  return { start, length, line };
}

class FolderPairs extends PairSource {
  private latentShape: number[] | undefined;
  private readonly gapSign: GapSign;

  constructor(
    readonly dir: string,
    private readonly file: string,
    private readonly lines: LineIndex,
    opts: FolderPairsOptions,
  ) {
    const splits = opts.split === undefined ? undefined : typeof opts.split === 'string' ? [opts.split] : opts.split;
    super(dir, lines.start.length, { ...opts, splits });
    this.latentShape = opts.latentShape ? [...opts.latentShape] : undefined;
    this.gapSign = opts.gapSign ?? 'winner-loser';
  }

  protected async *scan(want: Wanted): AsyncGenerator<ScanItem> {
    const n = this.lines.start.length;
    const order = want.shuffleSeed === undefined ? null : permutation(n, want.shuffleSeed);
    const fh = await fs.promises.open(this.file, 'r').catch((e) => {
      throw new PairDataError(this.file, null, `cannot read: ${(e as NodeJS.ErrnoException).code ?? messageOf(e)}`);
    });
    let latents: SafetensorsFile | null | undefined; // undefined: not opened yet; null: there is none
    try {
      for (let k = 0; k < n; k++) {
        const row = order ? order[k] : k;
        const ctx: RecordContext = { file: this.file, row, where: `line ${this.lines.line[row]}`, gapSign: this.gapSign };
        const buf = Buffer.alloc(this.lines.length[row]);
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.lines.start[row]);
        if (bytesRead !== buf.length) throw new PairDataError(this.file, null, 'file changed while being read (shorter than indexed)');
        let rec: Record<string, unknown>;
        try {
          rec = parseLine(buf, ctx);
        } catch (e) {
          yield { error: e as PairDataError };
          continue;
        }
        let item: ScanItem;
        try {
          const meta = parseRecord(rec, ctx, this.onlyLabeled);
          if (meta === 'unlabeled') {
            yield { unlabeled: true };
            continue;
          }
          const refs = imageRefs(rec, ctx);
          item = {
            meta,
            load: async () => {
              if (want.latents && latents === undefined && (refs.latent0 || refs.latent1)) latents = this.openLatents();
              return this.loadPixels(refs, ctx, want, latents ?? null);
            },
          };
        } catch (e) {
          if (!(e instanceof PairDataError)) throw e;
          item = { error: e };
        }
        yield item;
      }
    } finally {
      await fh.close();
      latents?.closeSync();
    }
  }

  private openLatents(): SafetensorsFile | null {
    const p = path.join(this.dir, LATENTS_FILE);
    if (!fs.existsSync(p)) return null;
    try {
      return SafetensorsFile.openSync(p);
    } catch (e) {
      throw new PairDataError(p, null, safetensorsProblem(e));
    }
  }

  private async loadPixels(refs: ImageRefs, ctx: RecordContext, want: Wanted, latents: SafetensorsFile | null): Promise<Pixels> {
    const px: Pixels = { image0: null, image1: null };
    if (want.images) {
      if (refs.image0) px.image0 = await this.readImage(refs.image0, 'image_0', ctx);
      if (refs.image1) px.image1 = await this.readImage(refs.image1, 'image_1', ctx);
    }
    if (want.latents) {
      if (refs.latent0) px.latent0 = await this.readLatent(latents, refs.latent0, 'latent_0', ctx);
      if (refs.latent1) px.latent1 = await this.readLatent(latents, refs.latent1, 'latent_1', ctx);
    }
    return px;
  }

  private async readImage(rel: string, field: string, ctx: RecordContext): Promise<Float32Array> {
    let bytes: Uint8Array;
    try {
      bytes = await fs.promises.readFile(path.resolve(this.dir, rel));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw rowError(ctx, `${field} ${JSON.stringify(rel)}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? messageOf(e)})`}`);
    }
    try {
      return loadModelImage(bytes, this.resolution);
    } catch (e) {
      throw rowError(ctx, `${field} ${JSON.stringify(rel)}: ${messageOf(e)}`);
    }
  }

  private async readLatent(f: SafetensorsFile | null, name: string, field: string, ctx: RecordContext): Promise<PairLatent> {
    if (!f) throw rowError(ctx, `${field} names tensor ${JSON.stringify(name)} but the folder has no ${LATENTS_FILE}`);
    if (!f.has(name)) throw rowError(ctx, `${field}: ${LATENTS_FILE} has no tensor ${JSON.stringify(name)}`);
    const info = f.info(name);
    if (!LATENT_DTYPES.has(info.dtype)) throw rowError(ctx, `${field}: tensor ${JSON.stringify(name)} is ${info.dtype}, not a float dtype`);
    const shape = info.shape.length === 4 && info.shape[0] === 1 ? info.shape.slice(1) : [...info.shape];
    if (shape.length !== 3 || shape.some((d) => d < 1)) {
      throw rowError(ctx, `${field}: tensor ${JSON.stringify(name)} has shape [${info.shape.join(', ')}]; expected [C, h, w]`);
    }
    this.latentShape ??= shape;
    if (shape.some((d, i) => d !== this.latentShape![i])) {
      throw rowError(ctx, `${field}: tensor ${JSON.stringify(name)} has shape [${shape.join(', ')}]; the dataset's latents are [${this.latentShape.join(', ')}]`);
    }
    try {
      return { data: await f.readF32(name), shape };
    } catch (e) {
      throw rowError(ctx, `${field}: ${safetensorsProblem(e)}`);
    }
  }
}

/** A safetensors error without the file name the PairDataError already carries. */
function safetensorsProblem(e: unknown): string {
  if (!(e instanceof SafetensorsError)) return messageOf(e);
  return `${e.key === null ? '' : `tensor ${JSON.stringify(e.key)}: `}${e.detail}`;
}

interface ImageRefs {
  image0?: string;
  image1?: string;
  latent0?: string;
  latent1?: string;
}

function parseLine(buf: Buffer, ctx: RecordContext): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw rowError(ctx, 'line is not valid UTF-8');
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw rowError(ctx, `not a JSON object: ${messageOf(e)}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw rowError(ctx, `not a JSON object (a ${Array.isArray(v) ? 'list' : v === null ? 'null' : typeof v})`);
  return v as Record<string, unknown>;
}

function imageRefs(rec: Record<string, unknown>, ctx: RecordContext): ImageRefs {
  const refs: ImageRefs = {};
  for (const [key, field] of [['image_0', 'image0'], ['image_1', 'image1'], ['latent_0', 'latent0'], ['latent_1', 'latent1']] as const) {
    const v = rec[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' || v === '' || v.includes('\0')) throw rowError(ctx, `${key} is ${JSON.stringify(v)}; expected a non-empty path or tensor name`);
    refs[field] = v;
  }
  for (const k of ['0', '1'] as const) {
    if (!refs[`image${k}`] && !refs[`latent${k}`]) throw rowError(ctx, `has neither image_${k} nor latent_${k}`);
  }
  return refs;
}

/** Opens a pair folder: indexes pairs.jsonl (one streaming pass); rows stream from `rows()`. */
export async function openPairFolder(dir: string, opts: FolderPairsOptions = {}) {
  const file = path.join(dir, PAIRS_FILE);
  const lines = await indexLines(file);
  if (opts.latentShape && (opts.latentShape.length !== 3 || !opts.latentShape.every((d) => Number.isInteger(d) && d > 0))) {
    throw new ArgumentError(`latentShape [${opts.latentShape.join(', ')}] must be [C, h, w] with positive sizes`);
  }
  return new FolderPairs(dir, file, lines, opts);
}
