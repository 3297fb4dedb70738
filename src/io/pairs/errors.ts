// Errors of the pair-dataset readers: a file-level problem (missing column, truncated parquet, unreadable file)
// names the file; a row-level one (bad label, undecodable image, bad JSON line) also names the row, so a user
// can find it, and only row-level errors can be skipped with `skipBad`.
import { FileFormatError } from '../../errors.js';

export class PairDataError extends FileFormatError {
  constructor(
    file: string,
    /** The row's index in its source (0-based), or null for a problem with the file as a whole. */
    readonly row: number | null,
    problem: string,
    /** Where in the file, when it is not just the row: e.g. 'line 12' of a JSONL file. */
    readonly where?: string,
  ) {
    super(file, row === null ? problem : `row ${row}${where ? ` (${where})` : ''}: ${problem}`);
  }

  /** Row-level errors can be counted and skipped; file-level ones always stop the pass. */
  get skippable(): boolean {
    return this.row !== null;
  }
}

/** The message of an unknown thrown value, for wrapping third-party errors into ours. */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
