// Preference-pair datasets: the public API of this folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArgumentError } from '../../errors.js';
import { PairDataError, messageOf } from './errors.js';
import { openPairFolder, PAIRS_FILE, type FolderPairsOptions } from './folder.js';
import { openParquetPairs, type ParquetPairsOptions } from './parquet.js';
import type { PairDataset } from './types.js';

export * from './types.js';
export { PairDataError } from './errors.js';
export { openPairFolder, PAIRS_FILE, LATENTS_FILE, type FolderPairsOptions } from './folder.js';
export { openParquetPairs, PARQUET_REQUIRED_COLUMNS, type ParquetPairsOptions } from './parquet.js';
export { GAP_CSV_COLUMNS } from './csv.js';
export { GAP_COLUMNS, isTie } from './record.js';
export { memoryPairs, type MemoryPair } from './memory.js';
export { PairFolderWriter, writePairFolder, type PairToWrite, type ImageToWrite, type PairFolderWriterOptions } from './writer.js';
export { inspectPairs, formatPairStats, type PairStats } from './inspect.js';
export { decodeImageBytes, resizeRgb8, toNormalizedChw, loadModelImage, bilinearCoeffs } from './image.js';

export type OpenPairsOptions = FolderPairsOptions & ParquetPairsOptions;

/**
 * Opens whatever `p` is: a pair folder (has pairs.jsonl), a .parquet file, or a folder of .parquet shards.
 * What `lpo train-lrm --data <p>` calls.
 */
export async function openPairs(p: string, opts: OpenPairsOptions = {}): Promise<PairDataset> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(p);
  } catch (e) {
    throw new PairDataError(p, null, `cannot open: ${(e as NodeJS.ErrnoException).code ?? messageOf(e)}`);
  }
  if (st.isDirectory() && fs.existsSync(path.join(p, PAIRS_FILE))) {
    if (opts.gapsCsv !== undefined) throw new ArgumentError(`a side CSV of gaps applies to parquet data; '${p}' is a pair folder (put gaps in ${PAIRS_FILE})`);
    return openPairFolder(p, opts);
  }
  if (opts.split !== undefined || opts.latentShape !== undefined) {
    throw new ArgumentError('split and latentShape apply to pair folders; parquet splits are separate files');
  }
  if (st.isDirectory() || p.endsWith('.parquet')) return openParquetPairs(p, opts);
  throw new PairDataError(p, null, `not a pair dataset: expected a folder with ${PAIRS_FILE}, a .parquet file or a folder of .parquet shards`);
}
