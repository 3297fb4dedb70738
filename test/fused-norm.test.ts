// groupNorm's fused forms: one dispatch forward (fused_sg on lavapipe, fused_wg on GPUs) and the fused SiLU
// (act(group_norm(x)) forward and backward in the norm's own kernels), against float64, with gradcheck, on
// both reduction variants and on the two-dispatch path (ragged S) and the unfused baseline (settings.fuse off).
import { afterAll, describe, expect, it } from 'vitest';
import { setupGpu, f32round, randNonZero, randn64, relL2 } from './helpers.js';
import { groupNormRef, groupNormBackwardRef } from './ref/norm.js';
import { poison, allFinite } from './ref/poison.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { groupNorm } from '../src/tensor/ops/norm.js';
import { groupNormPlan } from '../src/tensor/plan/variants.js';
import { overrideSettings, withSettings } from '../src/settings.js';
import { gradcheck } from '../src/autograd/gradcheck.js';
import { backward, requireGrad } from '../src/autograd/tape.js';
import { ArgumentError } from '../src/errors.js';

const g = await setupGpu();
let restore: (() => void) | null = null;
const use = (normVariant: 'serial' | 'wg', fuse = true) => { restore?.(); restore = overrideSettings({ normVariant, fuse }); };
afterAll(() => restore?.());

const TOL = 1e-5;
const sig = (v: number) => 1 / (1 + Math.exp(-v));

/** act(groupNorm) in float64: y, and dx/dγ/dβ for upstream dy. */
function reference(xh: Float64Array, dyh: Float64Array, n: number, c: number, s: number, groups: number, eps: number, silu: boolean, gh?: Float64Array, bh?: Float64Array) {
  const z = groupNormRef(xh, n, c, s, groups, eps, gh, bh).y;
  const y = silu ? z.map((v) => v * sig(v)) : z;
  const dz = silu ? dyh.map((d, i) => d * sig(z[i]) * (1 + z[i] * (1 - sig(z[i])))) : dyh;
  return { y, ...groupNormBackwardRef(xh, dz, n, c, s, groups, eps, gh) };
}

const CASES = [
  // [N, C, H, W], groups: S = 24 and 16 (multiples of 4: the fused kernels), S = 15 (ragged: stats + apply).
  { shape: [2, 8, 4, 6], groups: 4 },
  { shape: [3, 6, 4, 4], groups: 3 },
  { shape: [2, 6, 3, 5], groups: 2 },
] as const;

describe('groupNorm fused forms', () => {
  for (const [variant, fuse] of [['serial', true], ['wg', true], ['serial', false], ['wg', false]] as const) {
    for (const { shape, groups } of CASES) {
      for (const act of ['none', 'silu'] as const) {
        const [n, c, h, w] = shape;
        const s = h * w;
        it(`${variant}${fuse ? '' : ' unfused'} [${shape}] g${groups} ${act}: forward, dx, dγ, dβ vs float64 (relL2 < ${TOL})`, async () => {
          use(variant, fuse);
          const plan = groupNormPlan(s);
          if (!fuse) expect(plan).toMatch(/^stats/);
          else if (variant === 'wg') expect(plan).toBe('fused_wg');
          else expect(plan).toBe(g.hasSubgroups8 && s % 4 === 0 ? 'fused_sg' : 'stats');
          const gen = new Generator(40 + s + groups);
          const eps = 1e-5;
          const xh = f32round(randNonZero(gen, n * c * s).map((v) => 3 + 2 * v)); // mean far from 0
          const gh = f32round(randNonZero(gen, c, 0.5, 1.5));
          const bh = f32round(randNonZero(gen, c));
          const dyh = f32round(randn64(gen, n * c * s));
          const x = requireGrad(Tensor.fromArray(xh, shape));
          const gm = requireGrad(Tensor.fromArray(gh, [c]));
          const bt = requireGrad(Tensor.fromArray(bh, [c]));
          poison(shape, [n, groups]);
          const y = groupNorm(x, groups, { weight: gm, bias: bt, eps, activation: act });
          const yv = await y.toArray();
          expect(allFinite(yv)).toBe(true);
          const ref = reference(xh, dyh, n, c, s, groups, eps, act === 'silu', gh, bh);
          poison(shape, [c], [n, c]);
          const dy = Tensor.fromArray(dyh, shape);
          backward(y, dy);
          const [dx, dg, db] = await Promise.all([x, gm, bt].map((t) => t.grad!.toArray()));
          const errs = { fwd: relL2(yv, ref.y), dx: relL2(dx, ref.dx), dgamma: relL2(dg, ref.dgamma), dbeta: relL2(db, ref.dbeta) };
          for (const e of Object.values(errs)) expect(e).toBeLessThan(TOL);
          [x, gm, bt, dy, y].forEach((t) => { t.grad?.dispose(); t.dispose(); });
        });
      }
    }
    it(`${variant}${fuse ? '' : ' unfused'}: gradcheck of silu(groupNorm) (affine), S = 8`, async () => {
      use(variant, fuse);
      const gen = new Generator(47);
      const x = Tensor.fromArray(f32round(randNonZero(gen, 2 * 4 * 8)), [2, 4, 2, 4]);
      const gm = Tensor.fromArray(f32round(randNonZero(gen, 4, 0.5, 1.5)), [4]);
      const bt = Tensor.fromArray(f32round(randNonZero(gen, 4)), [4]);
      const r = await gradcheck((a, k, b) => groupNorm(a, 2, { weight: k, bias: b, eps: 1e-5, activation: 'silu' }), [x, gm, bt]);
      expect(r.failures).toEqual([]);
      expect(r.ok).toBe(true);
      [x, gm, bt].forEach((t) => t.dispose());
    });
  }

  it('without affine, the fused kernels normalise alone (fused_sg and fused_wg)', async () => {
    for (const variant of ['serial', 'wg'] as const) {
      use(variant);
      const gen = new Generator(48);
      const [n, c, s] = [2, 6, 8];
      const xh = f32round(randNonZero(gen, n * c * s));
      const x = Tensor.fromArray(xh, [n, c, 2, 4]);
      const y = groupNorm(x, 3, { eps: 1e-5, activation: 'silu' });
      const ref = reference(xh, new Float64Array(n * c * s), n, c, s, 3, 1e-5, true).y;
      expect(relL2(await y.toArray(), ref)).toBeLessThan(TOL);
      [x, y].forEach((t) => t.dispose());
    }
  });

  // fused_sg takes both statistics in one read (per-lane Welford, lanes combined by Chan's formula). With the
  // mean 200 σ from 0, Σx² − (Σx)²/L in f32 would lose most digits of the variance (relL2 ~1e-3); a far first
  // value is there too, against a shift by the block's first value. The mean itself carries ~200·2⁻²⁴ relative
  // error into x − mean, hence the tolerance.
  it('the statistics hold up when |mean| ≫ σ and the first value is an outlier (relL2 < 5e-5)', async () => {
    for (const variant of ['serial', 'wg'] as const) {
      use(variant);
      const gen = new Generator(49);
      const [n, c, h, w, groups] = [2, 4, 4, 6, 2];
      const s = h * w;
      expect(groupNormPlan(s)).toBe(variant === 'wg' ? 'fused_wg' : g.hasSubgroups8 ? 'fused_sg' : 'stats');
      const xh = f32round(randNonZero(gen, n * c * s).map((v) => 200 + v));
      xh[0] = 190;
      const x = Tensor.fromArray(xh, [n, c, h, w]);
      const y = groupNorm(x, groups, { eps: 1e-5 });
      const ref = reference(xh, new Float64Array(n * c * s), n, c, s, groups, 1e-5, false).y;
      expect(relL2(await y.toArray(), ref), variant).toBeLessThan(5e-5);
      [x, y].forEach((t) => t.dispose());
    }
  });

  it('an unknown activation is an ArgumentError', () => {
    const x = Tensor.empty([1, 4, 2, 2]);
    expect(() => withSettings({}, () => groupNorm(x, 2, { eps: 1e-5, activation: 'gelu' as 'silu' }))).toThrow(ArgumentError);
    x.dispose();
  });
});
