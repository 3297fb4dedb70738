// Text features of an LRM call: each distinct prompt encoded once, plus the encoded null prompt for VFE.
import type { Tensor } from '../tensor/tensor.js';

export class TextFeatures {
  constructor(
    /** The distinct prompts, in row order. */
    readonly prompts: readonly string[],
    /** For each prompt passed to encodeText, its row. */
    readonly index: Int32Array,
    /** [U, hidden] pooler_output (final-layer-normed hidden state at the first EOS). */
    readonly pooled: Tensor,
    /** [U, projectionDim] text_projection(pooled). */
    readonly T: Tensor,
    /** [U (+1), 77, hidden] last_hidden_state: the U-Net contexts; row `nullRow` is the null prompt's. */
    readonly context: Tensor,
    /** Row of the encoded null prompt in `context`, or -1 when VFE is off (w = 1). */
    readonly nullRow: number,
  ) {}

  /** Number of prompts passed to encodeText (with repeats). */
  get size(): number {
    return this.index.length;
  }

  dispose(): void {
    this.pooled.dispose();
    this.T.dispose();
    this.context.dispose();
  }
}
