// Pairs held in memory as a PairDataset (small synthetic sets, tests): the same checks, filters and counts as the
// file readers, because it goes through the same driver and the same record checks.
import { ArgumentError } from '../../errors.js';
import { PairDataError } from './errors.js';
import { parseRecord, toRecord } from './record.js';
import { PairSource, permutation, type ScanItem, type SourceOptions, type Wanted } from './source.js';
import type { PairLatent, PairMeta } from './types.js';

export interface MemoryPair extends Omit<PairMeta, 'index' | 'hasLabel'> {
  hasLabel?: boolean;
  /** CHW in [-1, 1] at the dataset's resolution. */
  image0?: Float32Array | null;
  image1?: Float32Array | null;
  latent0?: PairLatent;
  latent1?: PairLatent;
}

class MemoryPairs extends PairSource {
  constructor(private readonly pairs: readonly MemoryPair[], opts: SourceOptions & { source?: string }) {
    super(opts.source ?? '<memory>', pairs.length, opts);
    const want = 3 * this.resolution[0] * this.resolution[1];
    pairs.forEach((p, i) => {
      for (const img of [p.image0, p.image1]) {
        if (img && img.length !== want) {
          throw new ArgumentError(`pair ${i}: image has ${img.length} values; [3, ${this.resolution.join(', ')}] needs ${want}`);
        }
      }
    });
  }

  protected async *scan(want: Wanted): AsyncGenerator<ScanItem> {
    const n = this.pairs.length;
    const order = want.shuffleSeed === undefined ? null : permutation(n, want.shuffleSeed);
    for (let k = 0; k < n; k++) {
      const row = order ? order[k] : k;
      const p = this.pairs[row];
      let meta: PairMeta | 'unlabeled';
      try {
        meta = parseRecord(toRecord(p), { file: this.source, row, gapSign: 'winner-loser' }, this.onlyLabeled);
      } catch (e) {
        if (!(e instanceof PairDataError)) throw e;
        yield { error: e };
        continue;
      }
      if (meta === 'unlabeled') {
        yield { unlabeled: true };
        continue;
      }
      yield {
        meta,
        load: async () => ({
          image0: want.images ? p.image0 ?? null : null,
          image1: want.images ? p.image1 ?? null : null,
          ...(want.latents && p.latent0 ? { latent0: p.latent0 } : {}),
          ...(want.latents && p.latent1 ? { latent1: p.latent1 } : {}),
        }),
      };
    }
  }
}

/** Wraps in-memory pairs as a PairDataset (rows are checked like a file's). */
export function memoryPairs(pairs: readonly MemoryPair[], opts: SourceOptions & { source?: string } = {}) {
  return new MemoryPairs(pairs, opts);
}
