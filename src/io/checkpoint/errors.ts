// The error of a checkpoint that cannot be trusted: a missing or malformed manifest, a file whose size or
// sha256 differs from what the manifest recorded (truncated, corrupted, replaced), or a folder that is not one.
import { FileFormatError } from '../../errors.js';

export class CheckpointError extends FileFormatError {}
