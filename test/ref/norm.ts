// Float64 CPU references for groupNorm and layerNorm (forward and backward).

/** Normalises `blocks` contiguous blocks of length `len`; gamma/beta index = chan(blockIndex, i). */
function normFwd(x: ArrayLike<number>, blocks: number, len: number, eps: number, chan: (b: number, i: number) => number, gamma?: ArrayLike<number>, beta?: ArrayLike<number>) {
  const y = new Float64Array(x.length);
  const mean = new Float64Array(blocks);
  const rstd = new Float64Array(blocks);
  for (let b = 0; b < blocks; b++) {
    let s = 0;
    for (let i = 0; i < len; i++) s += x[b * len + i];
    const m = s / len;
    let q = 0;
    for (let i = 0; i < len; i++) q += (x[b * len + i] - m) ** 2;
    const r = 1 / Math.sqrt(q / len + eps);
    mean[b] = m;
    rstd[b] = r;
    for (let i = 0; i < len; i++) {
      const c = chan(b, i);
      y[b * len + i] = (x[b * len + i] - m) * r * (gamma ? gamma[c] : 1) + (beta ? beta[c] : 0);
    }
  }
  return { y, mean, rstd };
}

function normBwd(x: ArrayLike<number>, dy: ArrayLike<number>, blocks: number, len: number, eps: number, chan: (b: number, i: number) => number, nch: number, gamma?: ArrayLike<number>) {
  const { mean, rstd } = normFwd(x, blocks, len, eps, chan);
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(nch);
  const dbeta = new Float64Array(nch);
  for (let b = 0; b < blocks; b++) {
    let s1 = 0;
    let s2 = 0;
    for (let i = 0; i < len; i++) {
      const k = b * len + i;
      const c = chan(b, i);
      const xh = (x[k] - mean[b]) * rstd[b];
      const g = (gamma ? gamma[c] : 1) * dy[k];
      s1 += g;
      s2 += g * xh;
      dgamma[c] += dy[k] * xh;
      dbeta[c] += dy[k];
    }
    for (let i = 0; i < len; i++) {
      const k = b * len + i;
      const xh = (x[k] - mean[b]) * rstd[b];
      dx[k] = rstd[b] * ((gamma ? gamma[chan(b, i)] : 1) * dy[k] - s1 / len - xh * s2 / len);
    }
  }
  return { dx, dgamma, dbeta };
}

/** x [N, C, S] (S = spatial size). */
export function groupNormRef(x: ArrayLike<number>, n: number, c: number, s: number, groups: number, eps: number, gamma?: ArrayLike<number>, beta?: ArrayLike<number>) {
  const cg = c / groups;
  return normFwd(x, n * groups, cg * s, eps, (b, i) => (b % groups) * cg + Math.floor(i / s), gamma, beta);
}

export function groupNormBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>, n: number, c: number, s: number, groups: number, eps: number, gamma?: ArrayLike<number>) {
  const cg = c / groups;
  return normBwd(x, dy, n * groups, cg * s, eps, (b, i) => (b % groups) * cg + Math.floor(i / s), c, gamma);
}

/** x [R, D]. */
export function layerNormRef(x: ArrayLike<number>, rows: number, d: number, eps: number, gamma?: ArrayLike<number>, beta?: ArrayLike<number>) {
  return normFwd(x, rows, d, eps, (_b, i) => i, gamma, beta);
}

export function layerNormBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>, rows: number, d: number, eps: number, gamma?: ArrayLike<number>) {
  return normBwd(x, dy, rows, d, eps, (_b, i) => i, d, gamma);
}
