// One row's fields, as the authors name them (Pick-a-Pic columns, the side CSV, and pairs.jsonl keys), checked and
// turned into PairMeta. Both readers and the writer go through here, so the folder writer can never write a row
// the readers would reject, and a value is never silently coerced into something it was not.
import { PairDataError } from './errors.js';
import { PAIR_SPLITS, type GapSign, type PairGaps, type PairMeta, type PairSplit } from './types.js';

/** Gap columns in the authors' names, and the PairGaps field each becomes. */
export const GAP_COLUMNS = { aesthetic_gap: 'aesthetic', clipscore_gap: 'clip', vqascore_gap: 'vqa' } as const;
export type GapColumn = keyof typeof GAP_COLUMNS;

export interface RecordContext {
  file: string;
  row: number;
  /** e.g. 'line 12' for JSONL. */
  where?: string;
  gapSign: GapSign;
}

const LABEL_SUM_TOLERANCE = 1e-6;

export function rowError(ctx: RecordContext, problem: string): PairDataError {
  return new PairDataError(ctx.file, ctx.row, problem, ctx.where);
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'bigint') return `${v}`;
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** A finite number (numbers and bigints in the safe range), or an error naming the field. */
export function finiteNumber(v: unknown, field: string, ctx: RecordContext): number {
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(-Number.MAX_SAFE_INTEGER)) throw rowError(ctx, `${field} = ${v} is out of range`);
    return Number(v);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw rowError(ctx, `${field} is ${v === undefined ? 'missing' : show(v)}, not a finite number`);
  return v;
}

function flag01(v: unknown, field: string, ctx: RecordContext): 0 | 1 {
  if (v === true || v === false) return v ? 1 : 0;
  const n = finiteNumber(v, field, ctx);
  if (n !== 0 && n !== 1) throw rowError(ctx, `${field} = ${n}; expected 0 or 1`);
  return n;
}

/** True when the labels say the two images are equally good. */
export function labelsTie(label0: number, label1: number): boolean {
  return label0 === label1;
}

/** Whether a pair is a tie: its different_flag when it has one (the authors' MPCF reads it), else its labels. */
export function isTie(meta: Pick<PairMeta, 'label0' | 'label1' | 'gaps'>): boolean {
  const f = meta.gaps?.differentFlag;
  return f === undefined ? labelsTie(meta.label0, meta.label1) : f === 0;
}

/** PairMeta's fields under the authors' column names: the inverse of parseRecord (gaps winner − loser). */
export function toRecord(m: Omit<PairMeta, 'index' | 'hasLabel'> & { hasLabel?: boolean }): Record<string, unknown> {
  const rec: Record<string, unknown> = {
    caption: m.caption, label_0: m.label0, label_1: m.label1, num_example_per_prompt: m.numExamplesPerPrompt, has_label: m.hasLabel ?? true,
  };
  if (m.split !== undefined) rec.split = m.split;
  const g = m.gaps;
  if (g) {
    for (const [column, field] of Object.entries(GAP_COLUMNS) as [GapColumn, keyof PairGaps][]) {
      if (g[field] !== undefined) rec[column] = g[field];
    }
    if (g.differentFlag !== undefined) rec.different_flag = g.differentFlag;
  }
  return rec;
}

/**
 * Checks one row's fields and returns its metadata, or 'unlabeled' for a has_label = false row when only labelled
 * rows are wanted (such rows are not checked further: Pick-a-Pic leaves their labels meaningless).
 */
export function parseRecord(rec: Record<string, unknown>, ctx: RecordContext, onlyLabeled: boolean): PairMeta | 'unlabeled' {
  const hasLabel = rec.has_label === undefined || rec.has_label === null ? true : flag01(rec.has_label, 'has_label', ctx) === 1;
  if (!hasLabel && onlyLabeled) return 'unlabeled';

  const caption = rec.caption;
  if (typeof caption !== 'string') throw rowError(ctx, `caption is ${caption === undefined ? 'missing' : show(caption)}, not a string`);

  const label0 = finiteNumber(rec.label_0, 'label_0', ctx);
  const label1 = finiteNumber(rec.label_1, 'label_1', ctx);
  if (label0 < 0 || label0 > 1 || label1 < 0 || label1 > 1 || Math.abs(label0 + label1 - 1) > LABEL_SUM_TOLERANCE) {
    throw rowError(ctx, `labels ${label0}/${label1} are not a preference (each in [0, 1], summing to 1: 1/0, 0/1 or 0.5/0.5)`);
  }

  const n = finiteNumber(rec.num_example_per_prompt, 'num_example_per_prompt', ctx);
  if (!Number.isInteger(n) || n < 1) throw rowError(ctx, `num_example_per_prompt = ${n}; expected an integer ≥ 1`);

  let split: PairSplit | undefined;
  if (rec.split !== undefined && rec.split !== null) {
    if (typeof rec.split !== 'string' || !(PAIR_SPLITS as readonly string[]).includes(rec.split)) {
      throw rowError(ctx, `split is ${show(rec.split)}; expected one of ${PAIR_SPLITS.join(', ')}`);
    }
    split = rec.split as PairSplit;
  }

  const meta: PairMeta = { index: ctx.row, caption, label0, label1, numExamplesPerPrompt: n, hasLabel };
  if (split) meta.split = split;
  const gaps = parseGaps(rec, ctx, label0, label1);
  if (gaps) meta.gaps = gaps;
  return meta;
}

function parseGaps(rec: Record<string, unknown>, ctx: RecordContext, label0: number, label1: number): PairGaps | undefined {
  const gaps: PairGaps = {};
  let any = false;
  // Gaps stored as image_0 − image_1 become winner − loser by flipping rows that image_1 wins.
  const sign = ctx.gapSign === 'image0-image1' && label1 > label0 ? -1 : 1;
  for (const [column, field] of Object.entries(GAP_COLUMNS) as [GapColumn, keyof PairGaps][]) {
    const v = rec[column];
    if (v === undefined || v === null) continue;
    (gaps as Record<string, number>)[field] = sign * finiteNumber(v, column, ctx) || 0; // || 0: no −0
    any = true;
  }
  if (rec.different_flag !== undefined && rec.different_flag !== null) {
    const flag = flag01(rec.different_flag, 'different_flag', ctx);
    // A flag that contradicts the labels most likely means a side CSV that is not row-aligned with the data.
    if ((flag === 0) !== labelsTie(label0, label1)) {
      throw rowError(ctx, `different_flag = ${flag} contradicts labels ${label0}/${label1} (is the gap data row-aligned?)`);
    }
    gaps.differentFlag = flag;
    any = true;
  }
  return any ? gaps : undefined;
}
