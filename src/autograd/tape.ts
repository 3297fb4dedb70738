// A flat define-by-run tape: ops append nodes in forward order; backward walks them in reverse.
//
// Layering note: ops in src/tensor record onto this tape, and the tape accumulates gradients with
// the tensor layer's `add` op, so the two layers know each other (as tfjs-core's engine and ops do).
import { LpoError, ShapeError } from '../errors.js';
import { gpu } from '../gpu/runtime.js';
import { Tensor, keep } from '../tensor/tensor.js';
import { add, onesLike } from '../tensor/ops/elementwise.js';

/** A backward rule: given dL/dy, one lazy gradient per input (null where none flows). */
export type BackwardFn = (dy: Tensor, saved: readonly Tensor[]) => ((() => Tensor) | null)[];

export interface TapeNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  readonly outputId: number;
  saved: Tensor[];
  readonly backward: BackwardFn;
}

export class Tape {
  nodes: TapeNode[] = [];

  /** Drops every node and the tensors they saved. */
  clear(): void {
    for (const n of this.nodes) releaseSaved(n);
    this.nodes = [];
  }
}

const tapes: Tape[] = [new Tape()];
let gradDepth = 0; // > 0 inside noGrad

export function currentTape(): Tape {
  return tapes[tapes.length - 1];
}

export function isGradEnabled(): boolean {
  return gradDepth === 0;
}

/** Runs fn without recording anything (sampling, reference models, reward scoring). */
export function noGrad<T>(fn: () => T): T {
  gradDepth++;
  try {
    return fn();
  } finally {
    gradDepth--;
  }
}

/** Async noGrad: recording stays off until the promise settles. */
export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  gradDepth++;
  try {
    return await fn();
  } finally {
    gradDepth--;
  }
}

/** Runs fn on a fresh tape, so its nodes can be walked and dropped on their own. */
export function withTape<T>(tape: Tape, fn: () => T): T {
  tapes.push(tape);
  const depth = gradDepth;
  gradDepth = 0;
  try {
    return fn();
  } finally {
    gradDepth = depth;
    tapes.pop();
  }
}

/**
 * Records an op when gradients are on and any input requires one. `saved` tensors are retained
 * until backward has used them. Returns `output`.
 */
export function record(name: string, inputs: readonly Tensor[], output: Tensor, saved: readonly Tensor[], backward: BackwardFn): Tensor {
  gpu().checkOutput(name, output); // a no-op unless the NaN/Inf debug check is on
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) return output;
  output.requiresGrad = true;
  const node: TapeNode = { name, inputs: [...inputs], outputId: output.id, saved: saved.map((t) => keep(t.retain())), backward };
  output.node = node;
  currentTape().nodes.push(node);
  return output;
}

function releaseSaved(n: TapeNode): void {
  for (const t of n.saved) t.dispose();
  n.saved = [];
}

export interface BackwardOptions {
  /** Keep the graph (and saved tensors) for another backward pass. */
  retainGraph?: boolean;
}

/**
 * Backpropagates from `root`: with no `upstream` it must be a scalar (dL/droot = 1). Leaf
 * gradients accumulate into `.grad` (so micro-batches add up until zeroGrad()); intermediate
 * gradients are freed as soon as their node has consumed them.
 */
export function backward(root: Tensor, upstream?: Tensor, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new LpoError('backward(): the tensor does not require grad (no trainable input, or made under noGrad)');
  const tape = currentTape();
  let seed: Tensor;
  if (upstream) {
    if (upstream.shape.join() !== root.shape.join()) throw new ShapeError(`backward(): upstream gradient [${upstream.shape}] does not match [${root.shape}]`);
    seed = upstream.retain();
  } else {
    if (root.size !== 1) throw new ShapeError(`backward() without an upstream gradient needs a scalar, got [${root.shape}]`);
    seed = noGrad(() => onesLike(root));
  }
  if (root.node === null) {
    accumulateLeaf(root, seed);
    return;
  }
  if (!tape.nodes.includes(root.node)) {
    seed.dispose();
    // backward() frees the whole tape (a forward's unused branches must not pile up), so a second loss
    // from the same forward has lost its graph: say so instead of silently computing nothing.
    throw new LpoError("backward(): this tensor's graph was already freed by an earlier backward(); sum the losses first, or pass { retainGraph: true } to the earlier call");
  }
  const grads = new Map<number, Tensor>([[root.id, seed]]);
  let inFlight: Tensor | null = null; // the dy of the node being processed (out of `grads`)
  try {
    noGrad(() => {
      for (let i = tape.nodes.length - 1; i >= 0; i--) {
        const node = tape.nodes[i];
        const dy = grads.get(node.outputId);
        if (!dy) continue;
        grads.delete(node.outputId);
        inFlight = dy;
        const thunks = node.backward(dy, node.saved);
        node.inputs.forEach((input, j) => {
          const thunk = thunks[j];
          if (!input.requiresGrad || !thunk) return;
          let g = thunk();
          if (g === dy || node.saved.includes(g)) g = g.retain();
          if (g.shape.join() !== input.shape.join()) {
            g.dispose();
            throw new ShapeError(`backward of '${node.name}': gradient [${g.shape}] for input ${j} of shape [${input.shape}]`);
          }
          if (input.node === null) accumulateLeaf(input, g);
          else {
            const prev = grads.get(input.id);
            if (prev) {
              grads.set(input.id, add(prev, g));
              prev.dispose();
              g.dispose();
            } else grads.set(input.id, g);
          }
        });
        inFlight = null;
        dy.dispose();
        if (!opts.retainGraph) releaseSaved(node);
      }
    });
  } finally {
    // Also when a backward rule throws: the pending gradients are freed, and a graph that was partly consumed
    // (saved tensors released node by node) is dropped, so the next forward/backward starts clean. Leaf
    // gradients already accumulated stay (as in PyTorch). With retainGraph nothing was released: the tape stays.
    (inFlight as Tensor | null)?.dispose();
    for (const g of grads.values()) g.dispose();
    if (!opts.retainGraph) tape.clear();
  }
}

function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  if (leaf.grad) {
    const sum = keep(add(leaf.grad, g));
    leaf.grad.dispose();
    g.dispose();
    leaf.grad = sum;
  } else {
    leaf.grad = keep(g);
  }
}

/** Marks a tensor as a trainable leaf. */
export function requireGrad<T extends Tensor>(t: T, on = true): T {
  if (t.node) throw new LpoError('requireGrad(): only leaves (not op results) can be made trainable');
  t.requiresGrad = on;
  return t;
}

/** Frees and clears the gradients of these leaves. */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}
