// The LRM pair loss (LPO-SPEC §2.3, `loss_type: pair`) and the held-out accuracy, composed from existing ops.
//
// Per pair i with scores (s_i0, s_i1) and labels (l_i0, l_i1):
//   L_i = −l_i0·log p_i0 − l_i1·log p_i1 + [l_i0 == l_i1]·log 0.5,   p_i = softmax(s_i0, s_i1)
//   L   = Σ_i w_i L_i,  w_i = (1/n_i) / Σ_j (1/n_j)   (n_i = num_example_per_prompt, over the GLOBAL batch)
// The weights are passed in, not computed here, so micro-batches of one global batch use the global
// normaliser and their losses (and gradients) add up to the big batch's exactly.
import { ArgumentError, ShapeError } from '../errors.js';
import { Tensor, tidy } from '../tensor/tensor.js';
import { noGrad } from '../autograd/tape.js';
import { add, exp, mul, neg } from '../tensor/ops/elementwise.js';
import { reshape, transpose } from '../tensor/ops/layout.js';
import { sum, sumAll } from '../tensor/ops/reduce.js';
import { logSoftmax } from '../tensor/ops/softmax.js';

const LOG_HALF = Math.log(0.5);

/** w_i = (1/n_i) / Σ_j (1/n_j) over the pairs given (the global batch). */
export function pairWeights(numExamplesPerPrompt: readonly number[]): number[] {
  if (!numExamplesPerPrompt.length) throw new ArgumentError('pairWeights: no pairs');
  for (const n of numExamplesPerPrompt) {
    if (!(n > 0) || !Number.isFinite(n)) throw new ArgumentError(`pairWeights: num_example_per_prompt must be > 0, got ${n}`);
  }
  const inv = numExamplesPerPrompt.map((n) => 1 / n);
  const total = inv.reduce((a, b) => a + b, 0);
  return inv.map((v) => v / total);
}

export interface PairLabels {
  label0: readonly number[];
  label1: readonly number[];
  /** One weight per pair (pairWeights over the global batch; a slice of it for a micro-batch). */
  weights: readonly number[];
}

export interface PairLossOutput {
  /** [] Σ_i w_i L_i (differentiable). */
  loss: Tensor;
  /** [P, 2] (s_i0, s_i1). */
  logits: Tensor;
  /** [P, 2] softmax of the logits (no gradient). */
  probs: Tensor;
  /** [P] L_i (no gradient). */
  perPair: Tensor;
}

function checkLabels(P: number, l: PairLabels): void {
  if (l.label0.length !== P || l.label1.length !== P || l.weights.length !== P) {
    throw new ShapeError(`pairLoss: ${P} pairs but ${l.label0.length} label_0, ${l.label1.length} label_1 and ${l.weights.length} weights`);
  }
  for (let i = 0; i < P; i++) {
    const a = l.label0[i];
    const b = l.label1[i];
    if (!(a >= 0 && b >= 0 && Math.abs(a + b - 1) < 1e-6)) throw new ArgumentError(`pairLoss: pair ${i} has labels (${a}, ${b}); they must be ≥ 0 and sum to 1`);
  }
}

/**
 * The pair loss of scores [2P] ordered [image_0 of every pair; image_1 of every pair] (the criterion's order).
 * Returns the loss and, without gradient, the logits, probabilities and per-pair losses.
 */
export function pairLoss(scores: Tensor, labels: PairLabels): PairLossOutput {
  if (scores.rank !== 1 || scores.shape[0] % 2 !== 0 || scores.shape[0] === 0) throw new ShapeError(`pairLoss: scores must be [2P], got [${scores.shape}]`);
  const P = scores.shape[0] / 2;
  checkLabels(P, labels);
  const lab = new Float32Array(2 * P);
  const wl = new Float32Array(2 * P);
  const tie = new Float32Array(P);
  let tieConst = 0;
  for (let i = 0; i < P; i++) {
    lab[2 * i] = labels.label0[i];
    lab[2 * i + 1] = labels.label1[i];
    wl[2 * i] = labels.weights[i] * labels.label0[i];
    wl[2 * i + 1] = labels.weights[i] * labels.label1[i];
    if (labels.label0[i] === labels.label1[i]) {
      tie[i] = LOG_HALF;
      tieConst += labels.weights[i] * LOG_HALF;
    }
  }
  return tidy(() => {
    const logits = transpose(reshape(scores, [2, P]), 0, 1);
    const logp = logSoftmax(logits, -1);
    const loss = add(neg(sumAll(mul(logp, Tensor.fromArray(wl, [P, 2])))), Tensor.scalar(tieConst));
    const extra = noGrad(() => ({
      probs: exp(logp),
      perPair: add(neg(sum(mul(logp, Tensor.fromArray(lab, [P, 2])), 1)), Tensor.fromArray(tie, [P])),
    }));
    return { loss, logits, ...extra };
  });
}

/** Held-out accuracy of one pair (LPO-SPEC §2.4): (p0 > p1)·label_0 + (p0 < p1)·label_1, so a tie counts 0.5. */
export function pairAccuracy(s0: number, s1: number, label0: number, label1: number): number {
  return (s0 > s1 ? label0 : 0) + (s0 < s1 ? label1 : 0);
}
