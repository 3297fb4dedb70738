// A Generator that draws nothing: layers built with it start at zero instead of spending host time on
// random numbers that a checkpoint load overwrites (SD1.5's U-Net: ~860M draws, ~25 s on the host).
import { Generator } from '../tensor/random.js';

export class ZeroInitGenerator extends Generator {
  override uniformArray(n: number): Float32Array {
    return new Float32Array(n);
  }

  override normalArray(n: number): Float32Array {
    return new Float32Array(n);
  }
}
