// The one streaming driver behind every reader: a reader only says how to walk its rows (`scan`); filtering,
// skip-or-throw on bad rows, lazy decoding and the pass counts live here, once.
import { Generator } from '../../tensor/random.js';
import { ArgumentError } from '../../errors.js';
import { PairDataError, messageOf } from './errors.js';
import type { PairDataset, PairLatent, PairMeta, PairPassCounts, PairReaderOptions, PairRow, PairRowsOptions, PairSplit } from './types.js';

export interface Pixels {
  image0: Float32Array | null;
  image1: Float32Array | null;
  latent0?: PairLatent;
  latent1?: PairLatent;
}

export interface Wanted {
  images: boolean;
  latents: boolean;
  /** Visit rows in a seeded pseudo-random order (each reader says how random it can be). */
  shuffleSeed?: number;
}

/** What a reader's scan yields per source row. */
export type ScanItem =
  /** A row whose metadata checked out; `load` reads its pixels only if the row survives the filters. */
  | { meta: PairMeta; load: () => Promise<Pixels> }
  /** A row whose own fields are malformed (skippable), or `rows` consecutive rows that cannot be read at all. */
  | { error: PairDataError; rows?: number }
  /** A has_label = false row, dropped because only labelled rows are wanted. */
  | { unlabeled: true };

export function zeroCounts(): PairPassCounts {
  return { seen: 0, yielded: 0, filtered: 0, rejected: 0, skippedBad: 0 };
}

export function resolveResolution(r: PairReaderOptions['resolution']): readonly [number, number] {
  const hw = r === undefined ? [512, 512] : typeof r === 'number' ? [r, r] : [r[0], r[1]];
  if (!hw.every((v) => Number.isInteger(v) && v > 0 && v <= 16384)) {
    throw new ArgumentError(`resolution ${JSON.stringify(r)}: expected a positive integer side or [height, width] (≤ 16384)`);
  }
  return [hw[0], hw[1]] as const;
}

/** A seeded Fisher–Yates permutation of 0…n−1. */
export function permutation(n: number, seed: number): Uint32Array {
  const g = new Generator(seed);
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(g.uniform() * (i + 1));
    const t = p[i]; p[i] = p[j]; p[j] = t;
  }
  return p;
}

export interface SourceOptions extends PairReaderOptions {
  /** Yield only rows of these splits (a row without a split field counts as 'train'). */
  splits?: readonly PairSplit[];
}

export abstract class PairSource implements PairDataset {
  readonly resolution: readonly [number, number];
  private pass: PairPassCounts = zeroCounts();
  protected readonly skipBad: boolean;
  protected readonly onlyLabeled: boolean;
  private readonly onSkip?: (e: Error) => void;
  private readonly splits?: ReadonlySet<PairSplit>;

  protected constructor(readonly source: string, readonly size: number | undefined, opts: SourceOptions) {
    this.resolution = resolveResolution(opts.resolution);
    this.skipBad = opts.skipBad ?? false;
    this.onSkip = opts.onSkip;
    this.onlyLabeled = opts.onlyLabeled ?? true;
    if (opts.splits) this.splits = new Set(opts.splits);
  }

  get counts(): PairPassCounts {
    return this.pass;
  }

  protected abstract scan(want: Wanted): AsyncIterable<ScanItem>;

  async *rows(opts: PairRowsOptions = {}): AsyncGenerator<PairRow> {
    const counts = (this.pass = zeroCounts());
    const want: Wanted = { images: opts.images ?? true, latents: opts.latents ?? true, shuffleSeed: opts.shuffleSeed };
    for await (const item of this.scan(want)) {
      if ('error' in item) {
        counts.seen += item.rows ?? 1;
        this.skipOrThrow(item.error, counts, item.rows ?? 1);
        continue;
      }
      counts.seen++;
      if ('unlabeled' in item) {
        counts.filtered++;
        continue;
      }
      const { meta } = item;
      if (this.splits && !this.splits.has(meta.split ?? 'train')) {
        counts.filtered++;
        continue;
      }
      if (opts.where && !opts.where(meta)) {
        counts.rejected++;
        continue;
      }
      let px: Pixels;
      try {
        px = await item.load();
      } catch (e) {
        this.skipOrThrow(e, counts, 1);
        continue;
      }
      counts.yielded++;
      yield { ...meta, ...px };
    }
  }

  private skipOrThrow(e: unknown, counts: PairPassCounts, rows: number): void {
    if (!(e instanceof PairDataError)) {
      // A reader bug or an unexpected library failure: still a typed error naming the source.
      throw new PairDataError(this.source, null, `unexpected failure: ${messageOf(e)}`);
    }
    if (!this.skipBad || !e.skippable) throw e;
    counts.skippedBad += rows;
    this.onSkip?.(e);
  }
}
