// The root of every error lpo-wgsl throws. Each class means one thing, so callers (and the CLI, which
// prints `error.message` as one line) can tell a bad argument from a bad file from a device fault.
// Device faults live in src/gpu/errors.ts; readers' format errors extend FileFormatError.

export class LpoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Shapes that an op or a model cannot take (rank, sizes, broadcasting). */
export class ShapeError extends LpoError {}

/** A tensor of a dtype the op does not take (e.g. i32 into a float kernel), or a dtype the adapter lacks. */
export class DTypeError extends LpoError {}

/** An argument value out of its range or of the wrong kind (a negative learning rate, an unknown option). */
export class ArgumentError extends LpoError {}

/** A file that is missing, unreadable or malformed; `file` names it. Readers' own errors extend this. */
export class FileFormatError extends LpoError {
  constructor(readonly file: string, readonly problem: string) {
    super(`'${file}': ${problem}`);
  }
}

/** A command line that cannot be run as given (unknown flag, missing value, bad combination). */
export class UsageError extends LpoError {}
