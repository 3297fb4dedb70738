// The pair-dataset interface (contract 3 of the wave plan): every preference-data reader yields PairRows,
// one at a time, so a dataset of any size streams through the trainer without all its images in memory.

export type PairSplit = 'train' | 'validation' | 'test';
export const PAIR_SPLITS: readonly PairSplit[] = ['train', 'validation', 'test'];

/**
 * Score gaps of a pair, always winner − loser (LPO-SPEC §3's Δ). For a tie the sign is whatever the file held:
 * MPCF compares ties by |gap|.
 */
export interface PairGaps {
  aesthetic?: number;
  clip?: number;
  vqa?: number;
  /** 1 = a win-lose pair, 0 = a tie (the authors' `different_flag`). */
  differentFlag?: 0 | 1;
}

/** Everything a row says except its pixels: what filters (has_label, split, MPCF) look at before any decoding. */
export interface PairMeta {
  /** The row's position in its source (0-based, before any filtering; across shards for parquet). */
  index: number;
  caption: string;
  /** Labels in [0, 1] summing to 1: 1/0, 0/1, or 0.5/0.5 for a tie. */
  label0: number;
  label1: number;
  /** The authors' `num_example_per_prompt` (≥ 1); the pair loss weighs a pair by its inverse. */
  numExamplesPerPrompt: number;
  hasLabel: boolean;
  split?: PairSplit;
  gaps?: PairGaps;
}

/** One latent tensor read from a dataset (e.g. [4, h, w]). */
export interface PairLatent {
  data: Float32Array;
  shape: number[];
}

export interface PairRow extends PairMeta {
  /** RGB, CHW, in [-1, 1] (torchvision's Normalize([0.5], [0.5])) at the dataset's `resolution`; null when not decoded. */
  image0: Float32Array | null;
  image1: Float32Array | null;
  /** Pre-encoded latents (z0, already × the VAE scaling factor) when the dataset carries them. */
  latent0?: PairLatent;
  latent1?: PairLatent;
}

export interface PairRowsOptions {
  /** Decode the images (default true). false: image0/image1 are null and image bytes are not even read. */
  images?: boolean;
  /** Read pre-encoded latents where rows name them (default true). */
  latents?: boolean;
  /** Keeps a row when true; runs on the metadata before anything is decoded (filters such as MPCF use it). */
  where?: (meta: PairMeta) => boolean;
  /**
   * Visit rows in a seeded pseudo-random order (pass e.g. seed + epoch). A folder is fully permuted; a parquet
   * file permutes its row groups and the rows within each group (a full shuffle would need random access to
   * every image). Default: file order.
   */
  shuffleSeed?: number;
}

/** Counts of the latest (or running) pass of `rows()`. */
export interface PairPassCounts {
  /** Source rows looked at. */
  seen: number;
  /** Rows yielded. */
  yielded: number;
  /** Rows dropped by the reader's own filters (has_label, split). */
  filtered: number;
  /** Rows dropped by `where`. */
  rejected: number;
  /** Malformed rows skipped under `skipBad` (without it they throw). */
  skippedBad: number;
}

export interface PairDataset {
  /** The file or folder the rows come from (for messages). */
  readonly source: string;
  /** Rows in the source before any filtering: an upper bound on what `rows()` yields. */
  readonly size?: number;
  /** [height, width] of the decoded images. */
  readonly resolution: readonly [number, number];
  /** Counts of the latest pass; reset when `rows()` starts. */
  readonly counts: PairPassCounts;
  rows(opts?: PairRowsOptions): AsyncIterable<PairRow>;
}

/** Which sign convention a file's gap columns use. */
export type GapSign =
  /** Δ = winner − loser already (the authors' CSV, LPO-SPEC §3). */
  | 'winner-loser'
  /** image_0's score − image_1's score; the reader flips the sign of rows whose image_1 wins. */
  | 'image0-image1';

/** Options every reader takes. */
export interface PairReaderOptions {
  /** Model resolution the images are resized to: a side, or [height, width]. Default 512 (SD1.5). */
  resolution?: number | readonly [number, number];
  /** Skip malformed rows and count them (`counts.skippedBad`) instead of throwing. The CLI's --skip-bad. */
  skipBad?: boolean;
  /** Called with each skipped row's error (e.g. to log it). */
  onSkip?: (error: Error) => void;
  /** Yield only rows whose has_label is true (default true: the authors filter validation/test this way). */
  onlyLabeled?: boolean;
  /** Sign convention of the gap columns (default 'winner-loser'). */
  gapSign?: GapSign;
}
