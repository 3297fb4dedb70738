// Step-level pair selection (LPO-SPEC §4.2, the authors' preference_score_compare): among the K candidates
// of one x_t, winner = argmax and loser = argmin of the LRM scores; p = softmax over just those two scores;
// the pair is valid iff p_w − p_l > th(t), strictly. Runs on the host: K·B scores per step.
import { ShapeError } from '../errors.js';
import { threshold as thresholdAt, type ThresholdConfig } from './threshold.js';

const f = Math.fround;

export interface PairSelection {
  /** Candidate index of the winner / loser per column. */
  winner: number[];
  loser: number[];
  valid: boolean[];
  /** softmax([s_max, s_min]) per column. */
  pWin: number[];
  pLose: number[];
  /** th(t) per column. */
  threshold: number[];
  /** s_max − s_min per column. */
  margin: number[];
}

/**
 * `scores` is [K, B] row-major (candidate k of column b at k·B + b, the order the sampler flattens
 * candidates in); `timesteps` gives t per column (or one for all). The softmax and the comparison are done
 * in float32 as torch does them (the golden cases sit 0.02 score-gap units from the threshold).
 */
export function selectPairs(scores: ArrayLike<number>, K: number, B: number, timesteps: number | readonly number[], th: ThresholdConfig): PairSelection {
  if (!(Number.isInteger(K) && K >= 2)) throw new ShapeError(`selectPairs: need K ≥ 2 candidates, got ${K}`);
  if (scores.length !== K * B) throw new ShapeError(`selectPairs: ${scores.length} scores for K = ${K} × B = ${B}`);
  const ts = typeof timesteps === 'number' ? new Array<number>(B).fill(timesteps) : [...timesteps];
  if (ts.length !== B) throw new ShapeError(`selectPairs: ${ts.length} timesteps for ${B} columns`);
  const out: PairSelection = { winner: [], loser: [], valid: [], pWin: [], pLose: [], threshold: [], margin: [] };
  for (let b = 0; b < B; b++) {
    // A stable descending sort puts the first maximum on top and the last minimum at the bottom.
    let w = 0;
    let l = 0;
    for (let k = 1; k < K; k++) {
      const s = scores[k * B + b];
      if (s > scores[w * B + b]) w = k;
      if (s <= scores[l * B + b]) l = k;
    }
    const sw = f(scores[w * B + b]);
    const sl = f(scores[l * B + b]);
    // softmax([sw, sl]) = [1, e]/(1 + e) with e = exp(sl − sw) ≤ 1
    const e = f(Math.exp(f(sl - sw)));
    const z = f(1 + e);
    const pw = f(1 / z);
    const pl = f(e / z);
    const thr = thresholdAt(th, ts[b]);
    out.winner.push(w);
    out.loser.push(l);
    out.pWin.push(pw);
    out.pLose.push(pl);
    out.threshold.push(thr);
    out.valid.push(f(pw - pl) > thr);
    out.margin.push(sw - sl);
  }
  return out;
}
