// A quick look at a pair dataset without decoding a single image: counts, ties, splits, prompts, gaps.
import { isTie } from './record.js';
import { PAIR_SPLITS, type PairDataset, type PairPassCounts, type PairRowsOptions, type PairSplit } from './types.js';

export interface PairStats {
  source: string;
  /** Rows that passed the reader's filters (and `where`). */
  pairs: number;
  winLose: number;
  ties: number;
  /** Rows per split (rows without a split count as 'train'). */
  bySplit: Record<PairSplit, number>;
  /** Distinct captions. */
  prompts: number;
  /** Rows with all three score gaps (what MPCF needs). */
  withGaps: number;
  /** The reader's pass counts (seen, filtered, skipped as malformed...). */
  counts: PairPassCounts;
}

/** Reads every row's metadata (images and latents are not read) and counts. */
export async function inspectPairs(ds: PairDataset, opts: Pick<PairRowsOptions, 'where'> = {}): Promise<PairStats> {
  const bySplit = Object.fromEntries(PAIR_SPLITS.map((s) => [s, 0])) as Record<PairSplit, number>;
  const captions = new Set<string>();
  let pairs = 0, ties = 0, withGaps = 0;
  for await (const r of ds.rows({ images: false, latents: false, where: opts.where })) {
    pairs++;
    if (isTie(r)) ties++;
    bySplit[r.split ?? 'train']++;
    captions.add(r.caption);
    const g = r.gaps;
    if (g && g.aesthetic !== undefined && g.clip !== undefined && g.vqa !== undefined) withGaps++;
  }
  return { source: ds.source, pairs, winLose: pairs - ties, ties, bySplit, prompts: captions.size, withGaps, counts: { ...ds.counts } };
}

/** A few human-readable lines (what `lpo` prints for a dataset). */
export function formatPairStats(s: PairStats): string {
  const c = s.counts;
  const pct = (n: number): string => (s.pairs ? `${((100 * n) / s.pairs).toFixed(1)}%` : '—');
  return [
    `${s.source}: ${s.pairs} pairs over ${s.prompts} prompts (${s.winLose} win-lose, ${s.ties} ties = ${pct(s.ties)})`,
    `  splits: ${PAIR_SPLITS.map((k) => `${k} ${s.bySplit[k]}`).join(', ')}`,
    `  score gaps: ${s.withGaps} rows (${pct(s.withGaps)})`,
    `  rows read ${c.seen}: ${c.filtered} filtered (has_label/split), ${c.rejected} rejected by filter, ${c.skippedBad} malformed skipped`,
  ].join('\n');
}
