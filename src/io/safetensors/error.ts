// The error every malformed safetensors file, span or value raises.
import { LpoError } from '../../errors.js';

/** A header, a span or a value that breaks the format. Names the file and, where there is one, the tensor. */
export class SafetensorsError extends LpoError {
  constructor(readonly file: string, readonly key: string | null, readonly detail: string) {
    super(`safetensors file '${file}'${key === null ? '' : `, tensor ${JSON.stringify(key)}`}: ${detail}`);
  }
}
