// Multi-Preference Consistent Filtering (the paper's Table 1; LPO-SPEC §3, from the authors' step_sd_hf_dataset.py).
// Human labels of Pick-a-Pic are noisy; MPCF keeps a win-lose pair only when automatic scores agree with the
// human winner, and a tie only when the scores agree the images are close. With Δ = winner − loser:
//
//   strategy | win-lose pair kept if                    | tie kept if (all strategies)
//   1        | Δaes > 0    and Δclip > 0 and Δvqa > 0   | |Δaes| < 0.2 and |Δclip| < 0.03 and |Δvqa| < 0.07
//   2 (used) | Δaes > −0.5 and Δclip > 0 and Δvqa > 0   |
//   3        | Δaes > −1   and Δclip > 0 and Δvqa > 0   |
//   none     | every pair                               | every tie
//
// Every comparison is strict, as in the authors' pandas filter. Their tie rule compares the raw gaps with `<`;
// LPO-SPEC §3 reads it as |gap| (only 8,537 of 71,907 ties survive, which a signed test would not give), so we
// compare magnitudes and a tie's sign does not matter. A pair is a tie by its different_flag (the CSV's 0), or by
// its labels when it has no flag.
import { PairDataError } from '../io/pairs/errors.js';
import { GAP_COLUMNS, isTie } from '../io/pairs/record.js';
import type { PairDataset, PairMeta, PairPassCounts, PairRow, PairRowsOptions } from '../io/pairs/types.js';
import { ArgumentError } from '../errors.js';

export type MpcfStrategy = 1 | 2 | 3 | 'none';
export const MPCF_STRATEGIES: readonly MpcfStrategy[] = [1, 2, 3, 'none'];

/** A win-lose pair needs Δaes above this floor (and Δclip > 0, Δvqa > 0). */
export const MPCF_AESTHETIC_FLOOR = { 1: 0, 2: -0.5, 3: -1 } as const;
/** A tie needs every |gap| below these. */
export const MPCF_TIE_LIMITS = { aesthetic: 0.2, clip: 0.03, vqa: 0.07 } as const;

export interface MpcfCounts {
  strategy: MpcfStrategy;
  winLose: { kept: number; dropped: number };
  ties: { kept: number; dropped: number };
}

/** A row MPCF cannot judge (no score gaps). A configuration problem, so never skipped by skipBad. */
export class MpcfError extends PairDataError {
  override get skippable(): boolean {
    return false;
  }
}

export function zeroMpcfCounts(strategy: MpcfStrategy): MpcfCounts {
  return { strategy, winLose: { kept: 0, dropped: 0 }, ties: { kept: 0, dropped: 0 } };
}

/** Parses a CLI value ('1', '2', '3', 'none'). */
export function parseMpcfStrategy(v: string | number): MpcfStrategy {
  const s = String(v).trim().toLowerCase();
  if (s === 'none') return 'none';
  if (s === '1' || s === '2' || s === '3') return Number(s) as 1 | 2 | 3;
  throw new ArgumentError(`MPCF strategy ${JSON.stringify(v)}: expected 1, 2, 3 or none`);
}

/** Whether MPCF keeps a pair; throws MpcfError when a strategy other than none meets a row without gaps. */
export function mpcfKeeps(meta: PairMeta, strategy: MpcfStrategy, source = '<pairs>'): boolean {
  if (strategy === 'none') return true;
  const g = meta.gaps;
  const missing = Object.entries(GAP_COLUMNS).filter(([, field]) => g?.[field] === undefined).map(([column]) => column);
  if (!g || missing.length) {
    throw new MpcfError(
      source,
      meta.index,
      `MPCF strategy ${strategy} needs the aesthetic, CLIP and VQA score gaps; this row has no ${missing.join(', ')} ` +
        '(give them as columns or pairs.jsonl fields aesthetic_gap, clipscore_gap, vqascore_gap, or the authors\' side CSV; or use MPCF none)',
    );
  }
  const aes = g.aesthetic!, clip = g.clip!, vqa = g.vqa!;
  if (isTie(meta)) {
    return Math.abs(aes) < MPCF_TIE_LIMITS.aesthetic && Math.abs(clip) < MPCF_TIE_LIMITS.clip && Math.abs(vqa) < MPCF_TIE_LIMITS.vqa;
  }
  return aes > MPCF_AESTHETIC_FLOOR[strategy] && clip > 0 && vqa > 0;
}

/** A PairDataset that streams another through MPCF; `mpcf` counts kept/dropped pairs of the latest pass. */
export class MpcfDataset implements PairDataset {
  private pass: MpcfCounts;

  constructor(readonly inner: PairDataset, readonly strategy: MpcfStrategy) {
    if (!MPCF_STRATEGIES.includes(strategy)) throw new ArgumentError(`MPCF strategy ${String(strategy)}: expected 1, 2, 3 or 'none'`);
    this.pass = zeroMpcfCounts(strategy);
  }

  get source(): string { return this.inner.source; }
  get size(): number | undefined { return this.inner.size; }
  get resolution(): readonly [number, number] { return this.inner.resolution; }
  /** The inner reader's counts (MPCF's drops are among its `rejected`). */
  get counts(): PairPassCounts { return this.inner.counts; }
  /** Kept and dropped pairs per category in the latest (or running) pass. */
  get mpcf(): MpcfCounts { return this.pass; }

  rows(opts: PairRowsOptions = {}): AsyncIterable<PairRow> {
    const counts = (this.pass = zeroMpcfCounts(this.strategy));
    const where = opts.where;
    return this.inner.rows({
      ...opts,
      // Runs on metadata, before any image is decoded: dropped pairs cost no decoding.
      where: (m) => {
        if (where && !where(m)) return false;
        const keep = mpcfKeeps(m, this.strategy, this.inner.source);
        const bucket = isTie(m) ? counts.ties : counts.winLose;
        if (keep) bucket.kept++;
        else bucket.dropped++;
        return keep;
      },
    });
  }
}

export function mpcfFilter(ds: PairDataset, strategy: MpcfStrategy): MpcfDataset {
  return new MpcfDataset(ds, strategy);
}

/** One metadata-only pass (no image is read) that counts what MPCF keeps. */
export async function countMpcf(ds: PairDataset, strategy: MpcfStrategy): Promise<MpcfCounts> {
  const f = new MpcfDataset(ds, strategy);
  for await (const _ of f.rows({ images: false, latents: false })) {
    // counted by the filter
  }
  return { ...f.mpcf, winLose: { ...f.mpcf.winLose }, ties: { ...f.mpcf.ties } };
}

/** Printable summary, e.g. for the trainer's start-up lines. */
export function formatMpcfCounts(c: MpcfCounts): string {
  const wl = c.winLose, t = c.ties;
  const line = (name: string, b: { kept: number; dropped: number }): string => `${name}: kept ${b.kept} of ${b.kept + b.dropped} (dropped ${b.dropped})`;
  return `MPCF ${c.strategy === 'none' ? 'off (none)' : `strategy ${c.strategy}`}: ${wl.kept + t.kept} pairs kept; ${line('win-lose', wl)}; ${line('ties', t)}`;
}
