// Gradient checkpointing: run a block without keeping its activations, recompute it in backward.
import { Tensor, keep, tidy } from '../tensor/tensor.js';
import { zerosLike } from '../tensor/ops/elementwise.js';
import { Tape, backward, currentTape, isGradEnabled, noGrad, requireGrad, withTape, type TapeNode } from './tape.js';

/**
 * y = fn(...inputs), computed under noGrad (its intermediates are freed at once) and recorded as one
 * node. That node's backward re-runs fn on a fresh Tape with detached leaf copies of the inputs,
 * backpropagates dy through it and hands back the inputs' gradients; parameters used inside fn
 * (leaves that require grad) accumulate their `.grad` directly during that inner backward.
 *
 * fn must be deterministic (same result when re-run) and return one tensor.
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  const y = tidy(() => noGrad(() => fn(...inputs)));
  // Recorded even when no input needs a gradient: parameters inside fn may.
  const node: TapeNode = {
    name: 'checkpoint',
    inputs: [...inputs],
    outputId: y.id,
    saved: inputs.map((t) => keep(t.retain())),
    backward: (dy, saved) => {
      const grads = tidy(() => {
        const leaves = saved.map((s, i) => requireGrad(s.retain(), inputs[i].requiresGrad));
        const tape = new Tape();
        withTape(tape, () => {
          const y2 = fn(...leaves);
          if (y2.requiresGrad) backward(y2, dy);
          else tape.clear();
          y2.dispose();
        });
        const gs = leaves.map((l, i) => (inputs[i].requiresGrad ? l.grad ?? zerosLike(l) : null));
        leaves.forEach((l) => { l.grad = null; l.dispose(); });
        return gs;
      });
      return grads.map((g) => (g ? () => g : null));
    },
  };
  y.requiresGrad = true;
  y.node = node;
  currentTape().nodes.push(node);
  return y;
}
