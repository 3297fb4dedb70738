// gradcheck: the analytic gradient from the tape against central finite differences.
//
// The output is reduced to a scalar with a fixed random projection w (L = Σ w·f(x)) computed in
// float64 on the host, so only f's own f32 rounding enters the differences. Each checked element
// must satisfy |numeric − analytic| ≤ atol + rtol·|numeric|; a random-direction check covers the
// elements not sampled.
import { DTypeError } from '../errors.js';
import { Tensor, tidyAsync } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { backward, noGrad, requireGrad } from './tape.js';

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-2: f32 needs a large step). */
  eps?: number;
  /** Absolute tolerance (default 2e-3). */
  atol?: number;
  /** Relative tolerance (default 2e-2). */
  rtol?: number;
  /** Elements sampled per input (default 16); inputs with fewer are checked whole. */
  maxElements?: number;
  /** Which inputs to differentiate (default: all). */
  wrt?: number[];
  seed?: number;
}

export interface GradcheckFailure { input: number; index: number; numeric: number; analytic: number }

export interface GradcheckResult {
  ok: boolean;
  /** Number of element and direction comparisons made. */
  checks: number;
  /** Largest |numeric − analytic| / (atol + rtol·|numeric|): ≤ 1 passes. */
  worstRatio: number;
  failures: GradcheckFailure[];
}

async function scalarize(fn: (...xs: Tensor[]) => Tensor, xs: Tensor[], w: Float64Array): Promise<number> {
  return tidyAsync(async () => {
    const y = await noGrad(() => fn(...xs)).toArray();
    let s = 0;
    for (let i = 0; i < y.length; i++) s += w[i] * y[i];
    return s;
  });
}

export async function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions = {}): Promise<GradcheckResult> {
  const eps = opts.eps ?? 1e-2;
  const atol = opts.atol ?? 2e-3;
  const rtol = opts.rtol ?? 2e-2;
  const maxElements = opts.maxElements ?? 16;
  const wrt = opts.wrt ?? inputs.map((_, i) => i);
  const gen = new Generator(opts.seed ?? 1234);
  const hosts = await Promise.all(inputs.map((t) => t.toArray()));
  const fresh = (overrides: Map<number, Float32Array> = new Map()) =>
    inputs.map((t, i) => Tensor.fromArray(overrides.get(i) ?? hosts[i], t.shape, t.dtype));

  // Output shape and projection.
  const probe = fresh();
  const y0 = noGrad(() => fn(...probe));
  if (y0.dtype !== 'f32') throw new DTypeError('gradcheck: fn must return an f32 tensor');
  const w = Float64Array.from(gen.normalArray(y0.size));
  const yShape = y0.shape;
  y0.dispose();
  probe.forEach((t) => t.dispose());

  // Analytic gradients.
  const leaves = fresh();
  wrt.forEach((i) => requireGrad(leaves[i]));
  const y = fn(...leaves);
  const wT = Tensor.fromArray(Float32Array.from(w), yShape);
  backward(y, wT);
  wT.dispose();
  y.dispose();
  const analytic = new Map<number, Float32Array>();
  for (const i of wrt) {
    const g = leaves[i].grad;
    analytic.set(i, g ? await g.toArray() : new Float32Array(leaves[i].size));
  }
  leaves.forEach((t) => { t.grad?.dispose(); t.dispose(); });

  const res: GradcheckResult = { ok: true, checks: 0, worstRatio: 0, failures: [] };
  const judge = (input: number, index: number, numeric: number, ana: number) => {
    const ratio = Math.abs(numeric - ana) / (atol + rtol * Math.abs(numeric));
    res.checks++;
    res.worstRatio = Math.max(res.worstRatio, ratio);
    if (!(ratio <= 1)) {
      res.ok = false;
      res.failures.push({ input, index, numeric, analytic: ana });
    }
  };
  const at = async (i: number, mutate: (h: Float32Array) => void) => {
    const h = Float32Array.from(hosts[i]);
    mutate(h);
    const xs = fresh(new Map([[i, h]]));
    const v = await scalarize(fn, xs, w);
    xs.forEach((t) => t.dispose());
    return v;
  };

  for (const i of wrt) {
    const n = inputs[i].size;
    const idx = n <= maxElements ? [...Array(n).keys()] : [...new Set(Array.from({ length: maxElements }, () => Math.floor(gen.uniform() * n)))];
    for (const k of idx) {
      const plus = await at(i, (h) => { h[k] += eps; });
      const minus = await at(i, (h) => { h[k] -= eps; });
      judge(i, k, (plus - minus) / (2 * eps), analytic.get(i)![k]);
    }
  }

  // One random direction over all differentiated inputs at once.
  const dirs = new Map<number, Float32Array>(wrt.map((i) => [i, gen.normalArray(inputs[i].size)]));
  let ana = 0;
  for (const i of wrt) {
    const g = analytic.get(i)!;
    const d = dirs.get(i)!;
    for (let k = 0; k < g.length; k++) ana += g[k] * d[k];
  }
  const shifted = (sgn: number) => new Map(wrt.map((i) => [i, hosts[i].map((v, k) => v + sgn * eps * dirs.get(i)![k])]));
  const xsP = fresh(shifted(1));
  const xsM = fresh(shifted(-1));
  const dP = await scalarize(fn, xsP, w);
  const dM = await scalarize(fn, xsM, w);
  [...xsP, ...xsM].forEach((t) => t.dispose());
  judge(-1, -1, (dP - dM) / (2 * eps), ana);
  return res;
}
