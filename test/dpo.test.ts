import { beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { setupGpu, relL2, f32round } from './helpers.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { fill } from '../src/tensor/ops/elementwise.js';
import { stepDpoLoss } from '../src/tensor/ops/dpo.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { readSafetensorsSync } from '../src/io/safetensors.js';
import { stepDpoRef } from './ref/dpo.js';

beforeAll(setupGpu);

const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/golden/lpo/${f}`, import.meta.url));
const allFinite = (a: ArrayLike<number>) => Array.prototype.every.call(a, (x: number) => Number.isFinite(x));
function poison(...shapes: number[][]): void {
  shapes.map((s) => fill(s, NaN)).forEach((t) => t.dispose());
}

/** P pairs whose ratios fall inside the band, above it, below it, in every combination. */
function makePairs(gen: Generator, P: number, spread = 0.07) {
  const out = { pw: new Float64Array(P), rw: new Float64Array(P), pl: new Float64Array(P), rl: new Float64Array(P) };
  const delta = (kind: number) =>
    kind === 0 ? (gen.uniform() * 2 - 1) * spread : (kind === 1 ? 1 : -1) * (0.2 + 0.3 * gen.uniform());
  for (let i = 0; i < P; i++) {
    out.rw[i] = -1 - 2 * gen.uniform();
    out.rl[i] = -1 - 2 * gen.uniform();
    out.pw[i] = out.rw[i] + delta(i % 3);
    out.pl[i] = out.rl[i] + delta(Math.floor(i / 3) % 3);
  }
  return { pw: f32round(out.pw), rw: f32round(out.rw), pl: f32round(out.pl), rl: f32round(out.rl) };
}

describe('stepDpoLoss', () => {
  it('matches the LPO golden loss and gradients (β = 500, eps = 0.1; relL2 < 1e-4, exact zeros where clamped)', async () => {
    const { tensors: inp } = readSafetensorsSync(fixture('inputs.safetensors'));
    const { tensors: out } = readSafetensorsSync(fixture('outputs.safetensors'));
    const names = ['logp_policy_w', 'logp_ref_w', 'logp_policy_l', 'logp_ref_l'] as const;
    const P = inp['loss.logp_policy_w'].shape[0];
    const xs = names.map((n) => requireGrad(Tensor.fromArray(inp[`loss.${n}`].data, [P])));
    poison([], [4, P], [P], [P], [P], [P]);
    const loss = stepDpoLoss(xs[0], xs[1], xs[2], xs[3], { beta: 500, eps: 0.1 });
    const value = await loss.item();
    const want = out['loss.value'].data[0];
    console.log(`stepDpoLoss golden: loss ${value} vs ${want} (rel ${Math.abs(value - want) / Math.abs(want)})`);
    expect(Math.abs(value - want) / Math.abs(want)).toBeLessThan(1e-4);
    backward(loss);
    const inW = out['loss.in_band_w'].data;
    const inL = out['loss.in_band_l'].data;
    for (const [j, n] of names.entries()) {
      const g = await xs[j].grad!.toArray();
      const ref = out[`loss.grad.${n}`].data;
      expect(allFinite(g)).toBe(true);
      const e = relL2(g, ref);
      console.log(`stepDpoLoss golden grad.${n}: relL2 ${e.toExponential(2)}`);
      expect(e, n).toBeLessThan(1e-4);
      const band = n.endsWith('_w') ? inW : inL;
      for (let i = 0; i < P; i++) if (band[i] === 0) expect(g[i] === 0, `${n}[${i}] clamped: ${g[i]}`).toBe(true);
    }
  });

  it('matches float64 on random pairs in and out of the band (relL2 < 1e-5)', async () => {
    const gen = new Generator(7);
    const P = 137;
    const { pw, rw, pl, rl } = makePairs(gen, P);
    for (const beta of [500, 10, 2]) {
      const xs = [pw, rw, pl, rl].map((a) => requireGrad(Tensor.fromArray(a, [P])));
      const loss = stepDpoLoss(xs[0], xs[1], xs[2], xs[3], { beta, eps: 0.1 });
      const ref = stepDpoRef(pw, rw, pl, rl, beta, 0.1);
      const value = await loss.item();
      expect(Math.abs(value - ref.loss) / ref.loss, `loss β=${beta}`).toBeLessThan(1e-5);
      backward(loss);
      const grads = await Promise.all(xs.map((x) => x.grad!.toArray()));
      const refs = [ref.grad.pw, ref.grad.rw, ref.grad.pl, ref.grad.rl];
      let worst = 0;
      for (let j = 0; j < 4; j++) {
        worst = Math.max(worst, relL2(grads[j], refs[j]));
        for (let i = 0; i < P; i++) if (refs[j][i] === 0) expect(grads[j][i] === 0).toBe(true);
      }
      console.log(`stepDpoLoss random β=${beta}: loss rel err ${(Math.abs(value - ref.loss) / ref.loss).toExponential(2)}, worst grad relL2 ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-5);
    }
  });

  it('uses a stable log-sigmoid for large margins', async () => {
    // |x| up to 500·0.2 = 100: −log σ(x) must stay finite and ≈ −x for x ≪ 0.
    const t = (a: number[]) => Tensor.fromArray(a, [a.length]);
    const loss = await stepDpoLoss(t([-1.05, -1.0]), t([-1, -1]), t([-1.0, -1.05]), t([-1, -1]), { beta: 2000, eps: 0.1 }).item();
    const ref = stepDpoRef([-1.05, -1.0], [-1, -1], [-1.0, -1.05], [-1, -1], 2000, 0.1).loss;
    expect(Number.isFinite(loss)).toBe(true);
    expect(Math.abs(loss - ref) / ref).toBeLessThan(1e-5);
  });

  it('gradcheck (β = 2; eps 1e-2, atol 2e-3, rtol 2e-2)', async () => {
    const gen = new Generator(11);
    const { pw, rw, pl, rl } = makePairs(gen, 12, 0.06);
    const xs = [pw, rw, pl, rl].map((a) => Tensor.fromArray(a, [12]));
    const r = await gradcheck((a, b, c, d) => stepDpoLoss(a, b, c, d, { beta: 2, eps: 0.1 }), xs);
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('rejects mismatched shapes', () => {
    const a = Tensor.empty([3]);
    const b = Tensor.empty([4]);
    expect(() => stepDpoLoss(a, a, a, b, { beta: 1, eps: 0.1 })).toThrow(/stepDpoLoss/);
  });
});
