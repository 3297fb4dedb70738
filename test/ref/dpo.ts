// float64 reference for the step-DPO clamped-ratio loss and its gradients.
export function stepDpoRef(pw: ArrayLike<number>, rw: ArrayLike<number>, pl: ArrayLike<number>, rl: ArrayLike<number>, beta: number, eps: number) {
  const P = pw.length;
  const lo = 1 - eps, hi = 1 + eps;
  const g = { pw: new Float64Array(P), rw: new Float64Array(P), pl: new Float64Array(P), rl: new Float64Array(P) };
  let loss = 0;
  for (let i = 0; i < P; i++) {
    const ew = Math.exp(pw[i] - rw[i]);
    const el = Math.exp(pl[i] - rl[i]);
    const inW = ew >= lo && ew <= hi ? 1 : 0;
    const inL = el >= lo && el <= hi ? 1 : 0;
    const x = beta * (Math.log(Math.min(Math.max(ew, lo), hi)) - Math.log(Math.min(Math.max(el, lo), hi)));
    // softplus(−x) = −log σ(x)
    loss += Math.max(-x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
    const s = 1 / (1 + Math.exp(x)); // σ(−x)
    const gx = (-s * beta) / P;
    g.pw[i] = gx * inW;
    g.rw[i] = -gx * inW;
    g.pl[i] = -gx * inL;
    g.rl[i] = gx * inL;
  }
  return { loss: loss / P, grad: g };
}
