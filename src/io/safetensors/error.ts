// The error every malformed safetensors file, span or value raises.
import { FileFormatError } from '../../errors.js';

/** A header, a span or a value that breaks the format. Names the file and, where there is one, the tensor. */
export class SafetensorsError extends FileFormatError {
  constructor(file: string, readonly key: string | null, readonly detail: string) {
    super(file, key === null ? detail : `tensor ${JSON.stringify(key)}: ${detail}`);
    this.message = `safetensors file '${file}'${key === null ? '' : `, tensor ${JSON.stringify(key)}`}: ${detail}`;
  }
}
