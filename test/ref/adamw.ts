// float64 torch.optim.AdamW (amsgrad=False, maximize=False), one parameter.
export class AdamWRef {
  m: Float64Array;
  v: Float64Array;
  t = 0;
  constructor(public p: Float64Array, public lr: number, public b1: number, public b2: number, public eps: number, public wd: number) {
    this.m = new Float64Array(p.length);
    this.v = new Float64Array(p.length);
  }

  step(g: ArrayLike<number>): void {
    this.t++;
    const bc1 = 1 - this.b1 ** this.t;
    const bc2 = 1 - this.b2 ** this.t;
    const stepSize = this.lr / bc1;
    const bc2Sqrt = Math.sqrt(bc2);
    for (let i = 0; i < this.p.length; i++) {
      this.p[i] *= 1 - this.lr * this.wd;
      this.m[i] = this.b1 * this.m[i] + (1 - this.b1) * g[i];
      this.v[i] = this.b2 * this.v[i] + (1 - this.b2) * g[i] * g[i];
      const denom = Math.sqrt(this.v[i]) / bc2Sqrt + this.eps;
      this.p[i] -= (stepSize * this.m[i]) / denom;
    }
  }
}

export function l2(...gs: ArrayLike<number>[]): number {
  let s = 0;
  for (const g of gs) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}
