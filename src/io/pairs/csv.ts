// The authors' side CSV (`vqa_aes_clip_score_mp.csv`, LPO-SPEC §2.1): one row per parquet row, in the same
// order, with different_flag, aesthetic_gap, clipscore_gap and vqascore_gap (other columns, such as pandas'
// unnamed index, are ignored). Four numbers a row fit in memory even for Pick-a-Pic's 583k rows (~19 MB), and
// holding them lets the parquet reader visit row groups in any order.
import * as fs from 'node:fs';
import { parse, CsvError } from 'csv-parse';
import { PairDataError, messageOf } from './errors.js';

export const GAP_CSV_COLUMNS = ['different_flag', 'aesthetic_gap', 'clipscore_gap', 'vqascore_gap'] as const;

export interface GapTable {
  path: string;
  rows: number;
  flag: Int8Array;
  aesthetic: Float64Array;
  clip: Float64Array;
  vqa: Float64Array;
  /** Rows whose cells are malformed: row → problem (with its line). */
  bad: Map<number, string>;
}

function parseCell(s: string | undefined, column: string): number {
  const t = (s ?? '').trim();
  if (t === '') throw new Error(`${column} is empty`);
  if (column === 'different_flag') {
    const l = t.toLowerCase();
    if (l === 'true') return 1;
    if (l === 'false') return 0;
  }
  const v = Number(t);
  if (!Number.isFinite(v)) throw new Error(`${column} = ${JSON.stringify(t.slice(0, 40))} is not a finite number`);
  if (column === 'different_flag' && v !== 0 && v !== 1) throw new Error(`different_flag = ${t}; expected 0 or 1`);
  return v;
}

/** Reads the whole side CSV; a missing column or an unparseable file is a file-level PairDataError. */
export async function readGapCsv(path: string): Promise<GapTable> {
  let stream: fs.ReadStream;
  try {
    await fs.promises.access(path, fs.constants.R_OK);
    stream = fs.createReadStream(path);
  } catch (e) {
    throw new PairDataError(path, null, `cannot read the side CSV: ${(e as NodeJS.ErrnoException).code ?? messageOf(e)}`);
  }
  const parser = stream.pipe(parse({ bom: true, skip_empty_lines: true, relax_column_count: true, info: true }));
  let cols: number[] | null = null;
  const flag: number[] = [], aes: number[] = [], clip: number[] = [], vqa: number[] = [];
  const bad = new Map<number, string>();
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      if (cols === null) {
        const header = record.map((h) => h.trim());
        const missing = GAP_CSV_COLUMNS.filter((c) => !header.includes(c));
        if (missing.length) {
          throw new PairDataError(path, null, `side CSV lacks column(s) ${missing.join(', ')} (header: ${header.join(', ').slice(0, 200)})`);
        }
        cols = GAP_CSV_COLUMNS.map((c) => header.indexOf(c));
        continue;
      }
      const row = flag.length;
      try {
        const v = cols.map((i, k) => parseCell(record[i], GAP_CSV_COLUMNS[k]));
        flag.push(v[0]); aes.push(v[1]); clip.push(v[2]); vqa.push(v[3]);
      } catch (e) {
        bad.set(row, `side CSV line ${info.lines}: ${messageOf(e)}`);
        flag.push(-1); aes.push(NaN); clip.push(NaN); vqa.push(NaN);
      }
    }
  } catch (e) {
    stream.destroy();
    if (e instanceof PairDataError) throw e;
    const what = e instanceof CsvError ? `not a readable CSV: ${e.message}` : `cannot read the side CSV: ${messageOf(e)}`;
    throw new PairDataError(path, null, what);
  }
  if (cols === null) throw new PairDataError(path, null, 'side CSV is empty (no header line)');
  return {
    path, rows: flag.length, bad,
    flag: Int8Array.from(flag), aesthetic: Float64Array.from(aes), clip: Float64Array.from(clip), vqa: Float64Array.from(vqa),
  };
}

/** Row `row`'s gap fields, named as the columns are (for parseRecord), or the problem with its cells. */
export function gapFields(t: GapTable, row: number): Record<string, number> | string {
  const problem = t.bad.get(row);
  if (problem) return problem;
  return { different_flag: t.flag[row], aesthetic_gap: t.aesthetic[row], clipscore_gap: t.clip[row], vqascore_gap: t.vqa[row] };
}
