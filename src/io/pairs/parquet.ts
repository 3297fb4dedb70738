// Pick-a-Pic-style parquet (LPO-SPEC §2.1) through hyparquet: caption, jpg_0, jpg_1 (JPEG or PNG bytes), label_0,
// label_1, num_example_per_prompt, optional has_label, optional gap columns (or the authors' side CSV).
//
// Streaming: only the footer is read at open; rows are read one row group at a time (hyparquet fetches just that
// group's column chunks), and a row's image bytes are dropped as soon as the row is yielded. Memory is therefore
// bounded by one row group's compressed images (~100 rows for Hugging Face image datasets). A metadata-only pass
// (`rows({ images: false })`) never reads the image columns at all. hyparquet itself runs in a worker thread with
// a deadline (parquet-worker.ts), because some corrupt files make it loop forever.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PairDataError, messageOf } from './errors.js';
import { readGapCsv, gapFields, type GapTable } from './csv.js';
import { loadModelImage } from './image.js';
import { GAP_COLUMNS, parseRecord, rowError, type RecordContext } from './record.js';
import { ParquetWorker, type ParquetFooter } from './parquet-worker.js';
import { PairSource, permutation, type Pixels, type ScanItem, type Wanted } from './source.js';
import type { GapSign, PairReaderOptions } from './types.js';

export const PARQUET_REQUIRED_COLUMNS = ['caption', 'jpg_0', 'jpg_1', 'label_0', 'label_1', 'num_example_per_prompt'] as const;
const OPTIONAL_COLUMNS = ['has_label', 'split', 'different_flag', ...Object.keys(GAP_COLUMNS)];
const IMAGE_COLUMNS = ['jpg_0', 'jpg_1'] as const;
const READ_COLUMNS: ReadonlySet<string> = new Set([...PARQUET_REQUIRED_COLUMNS, ...OPTIONAL_COLUMNS]);
const META_COLUMNS: ReadonlySet<string> = new Set([...READ_COLUMNS].filter((c) => !(IMAGE_COLUMNS as readonly string[]).includes(c)));

export interface ParquetPairsOptions extends PairReaderOptions {
  /**
   * The authors' side CSV of score gaps, row-aligned with the parquet rows (across shards, in file-name order).
   * Its gaps replace any gap columns of the parquet.
   */
  gapsCsv?: string;
  /** Deadline for parsing one row group: this many ms plus 1 s per MB it holds (default 30,000). */
  parseDeadlineMs?: number;
}

interface Shard {
  path: string;
  /** Global index of the shard's first row. */
  base: number;
  columns: string[];
}

interface Group {
  shard: Shard;
  index: number;
  start: number;
  rows: number;
  bytes: number;
}

/** The parquet shards a path names: one file, or every *.parquet in a folder (sorted by name). */
async function shardPaths(p: string | readonly string[]): Promise<string[]> {
  if (typeof p !== 'string') return [...p];
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(p);
  } catch (e) {
    throw new PairDataError(p, null, `cannot open: ${(e as NodeJS.ErrnoException).code ?? messageOf(e)}`);
  }
  if (!st.isDirectory()) return [p];
  const names = (await fs.promises.readdir(p)).filter((n) => n.endsWith('.parquet')).sort();
  if (!names.length) throw new PairDataError(p, null, 'folder has no *.parquet files');
  return names.map((n) => path.join(p, n));
}

async function readFooter(worker: ParquetWorker, p: string): Promise<ParquetFooter> {
  try {
    await fs.promises.access(p, fs.constants.R_OK);
  } catch (e) {
    throw new PairDataError(p, null, `cannot open: ${(e as NodeJS.ErrnoException).code ?? messageOf(e)}`);
  }
  let footer: ParquetFooter;
  try {
    footer = await worker.footer(p);
  } catch (e) {
    throw new PairDataError(p, null, `not a readable parquet file (truncated or corrupt?): ${messageOf(e)}`);
  }
  const missing = PARQUET_REQUIRED_COLUMNS.filter((c) => !footer.columns.includes(c));
  if (missing.length) {
    throw new PairDataError(p, null, `parquet lacks required column(s) ${missing.join(', ')} (has: ${footer.columns.join(', ').slice(0, 300)})`);
  }
  return footer;
}

class ParquetPairs extends PairSource {
  constructor(
    source: string,
    private readonly groups: Group[],
    private readonly gaps: GapTable | undefined,
    private readonly gapSign: GapSign,
    size: number,
    private readonly opts: ParquetPairsOptions,
  ) {
    super(source, size, opts);
  }

  protected async *scan(want: Wanted): AsyncGenerator<ScanItem> {
    const order = want.shuffleSeed === undefined ? null : permutation(this.groups.length, want.shuffleSeed);
    const worker = new ParquetWorker(this.opts.parseDeadlineMs);
    try {
      for (let k = 0; k < this.groups.length; k++) {
        const g = this.groups[order ? order[k] : k];
        const { shard } = g;
        const columns = shard.columns.filter((c) => (want.images ? READ_COLUMNS : META_COLUMNS).has(c));
        let recs: (Record<string, unknown> | undefined)[];
        try {
          recs = await worker.rows(shard.path, columns, g.start, g.start + g.rows, g.bytes);
          if (recs.length !== g.rows) throw new Error(`read ${recs.length} rows, the footer says ${g.rows}`);
        } catch (e) {
          // A damaged row group: its rows are bad rows (skippable, counted, one report), and the rest of the file still reads.
          const first = shard.base + g.start;
          const where = `row group ${g.index}, rows ${first}–${first + g.rows - 1}`;
          yield { error: new PairDataError(shard.path, first, `cannot be read: ${messageOf(e)}`, where), rows: g.rows };
          continue;
        }
        const inner = want.shuffleSeed === undefined ? null : permutation(g.rows, (want.shuffleSeed * 7919 + k) >>> 0);
        for (let j = 0; j < g.rows; j++) {
          const i = inner ? inner[j] : j;
          const rec = recs[i] as Record<string, unknown>;
          recs[i] = undefined; // let the image bytes go once the row has been handed on
          yield this.item(shard, rec, shard.base + g.start + i, want);
        }
      }
    } finally {
      await worker.close();
    }
  }

  private item(shard: Shard, rec: Record<string, unknown>, row: number, want: Wanted): ScanItem {
    const ctx: RecordContext = { file: shard.path, row, gapSign: this.gapSign };
    try {
      let fields = rec;
      if (rec.caption instanceof Uint8Array) fields = { ...fields, caption: utf8(rec.caption, ctx) };
      if (this.gaps) {
        const g = gapFields(this.gaps, row);
        if (typeof g === 'string') throw new PairDataError(this.gaps.path, row, g);
        // The side CSV's gaps are computed winner − loser (LPO-SPEC §3), whatever the parquet's convention.
        fields = { ...fields, ...g };
      }
      const meta = parseRecord(fields, ctx, this.onlyLabeled);
      if (meta === 'unlabeled') return { unlabeled: true };
      return { meta, load: async (): Promise<Pixels> => (want.images ? this.decode(rec, ctx) : { image0: null, image1: null }) };
    } catch (e) {
      if (e instanceof PairDataError) return { error: e };
      throw e;
    }
  }

  private decode(rec: Record<string, unknown>, ctx: RecordContext): Pixels {
    const [image0, image1] = IMAGE_COLUMNS.map((col) => {
      const bytes = rec[col]; // the worker reduced Image structs {bytes, path} to their bytes
      if (!(bytes instanceof Uint8Array)) throw rowError(ctx, `${col} is ${rec[col] === null || rec[col] === undefined ? 'missing' : 'not binary image bytes'}`);
      try {
        return loadModelImage(bytes, this.resolution);
      } catch (e) {
        throw rowError(ctx, `${col}: ${messageOf(e)}`);
      }
    });
    return { image0, image1 };
  }
}

function utf8(b: Uint8Array, ctx: RecordContext): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    throw rowError(ctx, 'caption is not valid UTF-8');
  }
}

/**
 * Opens Pick-a-Pic-style parquet: a file, a folder of shards, or a list of shard files. Reads only the footers
 * (and the side CSV, when given); rows stream from `rows()`.
 */
export async function openParquetPairs(p: string | readonly string[], opts: ParquetPairsOptions = {}) {
  const paths = await shardPaths(p);
  const groups: Group[] = [];
  let base = 0;
  const worker = new ParquetWorker(opts.parseDeadlineMs);
  try {
    for (const sp of paths) {
      const footer = await readFooter(worker, sp);
      const shard: Shard = { path: sp, base, columns: footer.columns };
      let start = 0;
      footer.groups.forEach(({ rows, bytes }, index) => {
        if (!Number.isSafeInteger(rows) || rows < 0) throw new PairDataError(sp, null, `row group ${index} has an invalid row count (${rows})`);
        if (rows > 0) groups.push({ shard, index, start, rows, bytes: Number.isFinite(bytes) && bytes > 0 ? bytes : 0 });
        start += rows;
      });
      // Global row indices (and the side CSV's alignment) rest on these counts agreeing.
      if (start !== footer.numRows) throw new PairDataError(sp, null, `footer says ${footer.numRows} rows but its row groups hold ${start}`);
      base += start;
    }
  } finally {
    await worker.close();
  }
  let gaps: GapTable | undefined;
  if (opts.gapsCsv !== undefined) {
    gaps = await readGapCsv(opts.gapsCsv);
    if (gaps.rows !== base) {
      throw new PairDataError(opts.gapsCsv, null, `side CSV has ${gaps.rows} rows but the parquet has ${base}; they must be row-aligned`);
    }
  }
  const source = typeof p === 'string' ? p : paths.join(', ');
  return new ParquetPairs(source, groups, gaps, gaps ? 'winner-loser' : opts.gapSign ?? 'winner-loser', base, opts);
}
